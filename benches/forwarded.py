#!/usr/bin/env python3
"""Issue 17 item 4, before and after: which forwarding header Syncto believes.

Usage: benches/forwarded.py [--bin SYNCTO] [--fake FAKE_UPSTREAM]

Syncto behind a trusted proxy on 127.0.0.1 that sets X-Forwarded-For (as the shipped nginx
example does, and as nginx passes a client's own Forwarded header through); the client adds
`Forwarded: for=6.6.6.6`. Prints the `remote=` of Syncto's request log line: the proxy's
X-Forwarded-For value is right, the client's Forwarded value is a spoof that got in.
Against the fakes (examples/fake_upstream), loopback only, about a second.
"""

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "syncto"))
    ap.add_argument("--fake", default=os.path.join(ROOT, "target", "release", "examples", "fake_upstream"))
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="syncto-forwarded-")
    fake = subprocess.Popen([a.fake, "--seconds", "30"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    token_url = next(
        (line.strip().split("=", 1)[1] for line in fake.stdout if line.startswith("TOKEN_URL=")), None
    )
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    ini, log = os.path.join(tmp, "syncto.ini"), os.path.join(tmp, "syncto.log")
    with open(ini, "w") as f:
        f.write(f"[app:main]\ntoken_server_url = {token_url}\ntrusted_proxies = 127.0.0.1\n")
    proc = subprocess.Popen(
        [a.bin, "--config", ini, "--bind", f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL, stderr=open(log, "w")
    )
    try:
        for _ in range(100):
            try:
                c = socket.create_connection(("127.0.0.1", port), timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        else:
            sys.exit(f"syncto did not start; see {log}")
        c.sendall(
            b"GET /v1/__lbheartbeat__ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"X-Forwarded-For: 203.0.113.7\r\nForwarded: for=6.6.6.6\r\nConnection: close\r\n\r\n"
        )
        while c.recv(4096):
            pass
        c.close()
        time.sleep(0.3)
    finally:
        proc.terminate()
        proc.wait(10)
        fake.stdin.close()
        fake.wait(10)
    remote = [w for line in open(log) if "__lbheartbeat__" in line for w in line.split() if w.startswith("remote=")]
    print(f"proxy's X-Forwarded-For: 203.0.113.7, client's Forwarded: for=6.6.6.6 -> logged {' '.join(remote)}")


if __name__ == "__main__":
    main()
