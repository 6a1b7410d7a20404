#!/usr/bin/env python3
"""What one open connection costs Syncto (not part of `cargo test`).

    benches/connection_cost.py [--bin target/release/syncto] [--connections 500] [--tunables]

Starts Syncto (head limit 60 s, so that silent connections stay), opens --connections
connections that send nothing, then sends one `GET /v1/__lbheartbeat__` on each and reads
the answer; prints the RSS and threads at start, with the silent connections, and after
the requests, and the RSS per connection. `--tunables`: the systemd unit's GLIBC_TUNABLES.
Bounded: the process is killed at the end.
"""

import argparse
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    common.add_binary_args(p, fake=False)
    p.add_argument("--connections", type=int, default=500)
    p.add_argument("--tunables", action="store_true")
    args = p.parse_args()
    env = common.env_with(SYNCTO_TOKEN_SERVER_URL="http://127.0.0.1:9/",
                          SYNCTO_REQUEST_HEAD_TIMEOUT_SECONDS="60")
    if args.tunables:
        env["GLIBC_TUNABLES"] = common.glibc_tunables()
    server = common.Syncto(args.bin, env=env)
    port, rss, threads = server.port, server.rss_kb, server.threads
    try:
        # Only a connection, so that no request is made before the first figure.
        server.wait(lambda: socket.create_connection(("127.0.0.1", port), timeout=1).close() or True)
        time.sleep(1)
        n = args.connections
        start = rss()
        socks = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(n)]
        time.sleep(2)
        silent, silent_threads = rss(), threads()
        for c in socks:
            c.sendall(b"GET /v1/__lbheartbeat__ HTTP/1.1\r\nHost: x\r\n\r\n")
        for c in socks:
            c.recv(4096)
        time.sleep(1)
        after = rss()
        print(f"RSS at start {start} KB; {n} silent connections: {silent} KB "
              f"({(silent - start) / n:.1f} KB each), {silent_threads} threads; "
              f"after one request each: {after} KB ({(after - start) / n:.1f} KB each)")
        for c in socks:
            c.close()
    finally:
        server.kill()


if __name__ == "__main__":
    main()
