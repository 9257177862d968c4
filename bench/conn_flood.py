#!/usr/bin/env python3
"""Idle-connection flood against a running Sightline, and /healthz latency meanwhile.

Opens N TCP connections from one loopback address (default 127.0.0.2) that never send a
byte, counts how many the server holds and how many it refuses at once, then, while the
flood holds its connections, times GET /healthz on fresh connections from another
loopback address (127.0.0.1) for a few seconds. Bounded: N connections, PROBE_SECS of
probing, 2 s per probe. Loopback only. Prints one JSON line.

Usage: bench/conn_flood.py PORT [N=2000] [PROBE_SECS=6]
"""

import asyncio
import json
import resource
import sys
import time

FLOOD_FROM = "127.0.0.2"
HOST = "127.0.0.1"


async def open_idle(port):
    try:
        r, w = await asyncio.wait_for(
            asyncio.open_connection(HOST, port, local_addr=(FLOOD_FROM, 0)), 2
        )
    except (OSError, asyncio.TimeoutError):
        return None, "connect_failed"
    try:
        data = await asyncio.wait_for(r.read(64), 0.2)
        w.close()
        return None, "refused_503" if data.startswith(b"HTTP/1.1 503") else "closed"
    except asyncio.TimeoutError:
        return w, "held"
    except OSError:
        return None, "closed"


async def probe(port):
    start = time.monotonic()
    try:
        r, w = await asyncio.wait_for(asyncio.open_connection(HOST, port), 2)
        w.write(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        data = await asyncio.wait_for(r.read(4096), 2 - (time.monotonic() - start))
        w.close()
        ok = data.startswith(b"HTTP/1.1 200")
    except (OSError, asyncio.TimeoutError):
        ok = False
    return time.monotonic() - start, ok


def pct(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


async def main():
    port = int(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    probe_secs = float(sys.argv[3]) if len(sys.argv) > 3 else 6.0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    outcomes = {}
    held = []
    t0 = time.monotonic()
    for i in range(0, n, 200):
        batch = await asyncio.gather(*(open_idle(port) for _ in range(min(200, n - i))))
        for w, what in batch:
            outcomes[what] = outcomes.get(what, 0) + 1
            if w is not None:
                held.append(w)
    flood_secs = time.monotonic() - t0
    lat, fails = [], 0
    until = time.monotonic() + probe_secs
    while time.monotonic() < until:
        took, ok = await probe(port)
        # A failed or timed-out probe counts with the time it took (up to the 2 s cap).
        lat.append(took)
        fails += 0 if ok else 1
        await asyncio.sleep(0.02)
    for w in held:
        w.close()
    ms = lambda x: None if x is None else round(x * 1000, 2)
    print(json.dumps({
        "flood_connections": n,
        "flood_open_secs": round(flood_secs, 2),
        "outcomes": outcomes,
        "healthz_probes": len(lat),
        "healthz_failed_or_over_2s": fails,
        "healthz_p50_ms": ms(pct(lat, 50)),
        "healthz_p99_ms": ms(pct(lat, 99)),
        "healthz_max_ms": ms(max(lat) if lat else None),
    }))


asyncio.run(main())
