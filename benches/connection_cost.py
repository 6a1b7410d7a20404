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
import subprocess
import time


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bin", default=os.path.join(root, "target/release/syncto"))
    p.add_argument("--connections", type=int, default=500)
    p.add_argument("--tunables", action="store_true")
    args = p.parse_args()
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    env = dict(os.environ, SYNCTO_TOKEN_SERVER_URL="http://127.0.0.1:9/",
               SYNCTO_REQUEST_HEAD_TIMEOUT_SECONDS="60")
    env.pop("SYNCTO_INI", None)
    if args.tunables:
        unit = open(os.path.join(root, "etc/syncto.service")).read()
        env["GLIBC_TUNABLES"] = next(l.split("GLIBC_TUNABLES=", 1)[1].strip()
                                     for l in unit.splitlines() if "GLIBC_TUNABLES=" in l)
    proc = subprocess.Popen([args.bin, "--bind", f"127.0.0.1:{port}"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def rss():
        with open(f"/proc/{proc.pid}/status") as f:
            return int(next(l.split()[1] for l in f if l.startswith("VmRSS")))

    def threads():
        return len(os.listdir(f"/proc/{proc.pid}/task"))

    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("syncto did not start")
                time.sleep(0.1)
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
        proc.kill()
        proc.wait()


if __name__ == "__main__":
    main()
