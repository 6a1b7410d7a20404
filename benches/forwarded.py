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
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    common.add_binary_args(ap)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="syncto-forwarded-")
    fake = common.Fake(a.fake, "--seconds", "30")
    ini = common.write_ini(
        os.path.join(tmp, "syncto.ini"), token_server_url=fake.token_url, trusted_proxies="127.0.0.1"
    )
    log = os.path.join(tmp, "syncto.log")
    server = common.Syncto(a.bin, config=ini, env=common.env_without_syncto(), log=open(log, "w"))
    try:
        c = server.wait(
            lambda: socket.create_connection(("127.0.0.1", server.port), timeout=1),
            seconds=5,
            pause=0.05,
            what=f"syncto did not start; see {log}",
        )
        c.sendall(
            b"GET /v1/__lbheartbeat__ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"X-Forwarded-For: 203.0.113.7\r\nForwarded: for=6.6.6.6\r\nConnection: close\r\n\r\n"
        )
        while c.recv(4096):
            pass
        c.close()
        time.sleep(0.3)
    finally:
        server.terminate(10)
        fake.stop()
    remote = [w for line in open(log) if "__lbheartbeat__" in line for w in line.split() if w.startswith("remote=")]
    print(f"proxy's X-Forwarded-For: 203.0.113.7, client's Forwarded: for=6.6.6.6 -> logged {' '.join(remote)}")


if __name__ == "__main__":
    main()
