#!/usr/bin/env python3
"""Open TURN allocations over TCP (or TLS) one connection each, up to N, and
hold them: how many does a server keep, and what does it answer past that?
Sources are spread over 127.0.0.x (100 connections per address) so a per-IP
cap does not decide the result. Loopback only; bounded in count and time.

usage: hold_allocations.py PORT SECRET REALM N [tcp|tls] [UDP_PORT]
prints one summary line: held=, refused= (how: closed / error code / timeout),
and whether the server still answered a UDP Binding on UDP_PORT (default
PORT) afterwards."""
import base64, hashlib, hmac, os, socket, ssl, struct, sys, time

COOKIE = 0x2112A442


def attr(t, v):
    pad = (4 - len(v) % 4) % 4
    return struct.pack("!HH", t, len(v)) + v + b"\0" * pad


def message(method, attrs, key=None):
    tid = os.urandom(12)
    body = b"".join(attrs)
    if key is not None:
        # MESSAGE-INTEGRITY over the message with the length including it.
        head = struct.pack("!HHI", method, len(body) + 24, COOKIE) + tid
        mac = hmac.new(key, head + body, hashlib.sha1).digest()
        body += attr(0x0008, mac)
    return struct.pack("!HHI", method, len(body), COOKIE) + tid + body


def read_msg(s):
    head = b""
    while len(head) < 20:
        chunk = s.recv(20 - len(head))
        if not chunk:
            raise ConnectionError("closed")
        head += chunk
    n = struct.unpack("!H", head[2:4])[0]
    body = b""
    while len(body) < n:
        chunk = s.recv(n - len(body))
        if not chunk:
            raise ConnectionError("closed")
        body += chunk
    return head, body


def attrs_of(body):
    out = {}
    i = 0
    while i + 4 <= len(body):
        t, n = struct.unpack("!HH", body[i:i + 4])
        out[t] = body[i + 4:i + 4 + n]
        i += 4 + n + (4 - n % 4) % 4
    return out


def allocate(port, secret, realm, i, use_tls, ctx):
    src = "127.0.0.%d" % (1 + i // 100)
    raw = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(src, 0))
    s = ctx.wrap_socket(raw) if use_tls else raw
    user = "%d:h%d" % (int(time.time()) + 3600, i)
    pw = base64.b64encode(hmac.new(secret.encode(), user.encode(), hashlib.sha1).digest())
    transport = attr(0x0019, bytes([17, 0, 0, 0]))
    s.sendall(message(0x0003, [transport]))
    head, body = read_msg(s)
    a = attrs_of(body)
    if 0x0015 not in a:
        return s, "no nonce (type %04x)" % struct.unpack("!H", head[:2])[0]
    key = hashlib.md5(user.encode() + b":" + realm.encode() + b":" + pw).digest()
    req = message(0x0003, [transport, attr(0x0006, user.encode()), attr(0x0014, realm.encode()),
                           attr(0x0015, a[0x0015])], key)
    s.sendall(req)
    head, body = read_msg(s)
    if head[:2] == b"\x01\x03":
        return s, None
    err = attrs_of(body).get(0x0009, b"\0\0\0\0")
    return s, "error %d" % (err[2] * 100 + err[3])


def main():
    port, secret, realm, n = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
    use_tls = len(sys.argv) > 5 and sys.argv[5] == "tls"
    udp_port = int(sys.argv[6]) if len(sys.argv) > 6 else port
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    held, refusals, first = [], {}, None
    t_end = time.time() + 120
    failures_in_row = 0
    for i in range(n):
        if time.time() > t_end or failures_in_row >= 50:
            break
        t0 = time.time()
        try:
            s, err = allocate(port, secret, realm, i, use_tls, ctx)
        except (ConnectionError, ssl.SSLError, OSError) as e:
            kind = "timeout" if isinstance(e, socket.timeout) else "closed"
            err, s = "%s after %.0f ms" % (kind, (time.time() - t0) * 1000), None
            err_key = kind
        else:
            err_key = err
        if err is None:
            held.append(s)
            failures_in_row = 0
            continue
        failures_in_row += 1
        refusals[err_key] = refusals.get(err_key, 0) + 1
        if first is None:
            first = (i, err)
        if s is not None:
            s.close()
    # Does the server still answer (UDP Binding on the same port)?
    alive = False
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.settimeout(2)
    try:
        u.sendto(message(0x0001, []), ("127.0.0.1", udp_port))
        alive = len(u.recv(2048)) >= 20
    except OSError:
        pass
    print("%s held=%d refused=%s first_refusal=%s server_answers_after=%s" % (
        "TLS" if use_tls else "TCP", len(held), refusals, first, alive))
    time.sleep(1)
    for s in held:
        s.close()


if __name__ == "__main__":
    main()
