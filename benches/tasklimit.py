#!/usr/bin/env python3
"""Syncto under a task limit (issue 17 item 2; not part of `cargo test`).

    benches/tasklimit.py [--bin target/release/syncto] [--nproc 40] [--idle 60]
                         [--max-connections N]

Starts Syncto as `nobody` (setpriv, so the limit applies: root ignores RLIMIT_NPROC)
with `RLIMIT_NPROC` = --nproc, opens --idle connections that send nothing, then makes
20 `GET /v1/__lbheartbeat__` on new connections; closes the idle ones and makes 20
more. Reports each round's statuses (200, 503, or the client's error), the threads
of the process, whether it is still alive, and the log lines about threads. Run as
root. Bounded: every client call has a 5 s timeout, the process is killed at the end.
"""

import argparse
import http.client
import json
import os
import sys
import socket
import subprocess
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def get(port, path, timeout=5.0):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        c.request("GET", path, headers={"Connection": "close"})
        r = c.getresponse()
        r.read()
        c.close()
        return r.status
    except Exception as e:  # what a client sees
        return type(e).__name__


def threads(pid):
    try:
        return common.threads(pid)
    except OSError:
        return None


def rounds(port, n=20):
    out = {}
    for _ in range(n):
        s = str(get(port, "/v1/__lbheartbeat__"))
        out[s] = out.get(s, 0) + 1
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    common.add_binary_args(p, fake=False)
    p.add_argument("--nproc", type=int, default=40)
    p.add_argument("--idle", type=int, default=60)
    p.add_argument("--max-connections", help="SYNCTO_MAX_CONNECTIONS (default: derived)")
    args = p.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root (the server runs as nobody under the limit)")
    env = common.env_with(SYNCTO_TOKEN_SERVER_URL="http://127.0.0.1:9/")
    if args.max_connections:
        env["SYNCTO_MAX_CONNECTIONS"] = args.max_connections
    log = tempfile.TemporaryFile("w+")
    server = common.Syncto(
        args.bin, env=env, log=log, stdout=subprocess.DEVNULL,
        prefix=["prlimit", f"--nproc={args.nproc}:{args.nproc}", "setpriv", "--reuid=65534",
                "--regid=65534", "--clear-groups"])
    port, proc = server.port, server.proc
    report = {"binary": args.bin, "nproc": args.nproc, "idle": args.idle,
              "max_connections": args.max_connections or "default"}
    try:
        server.wait(lambda: get(port, "/v1/__lbheartbeat__", 1) == 200)
        report["threads_at_start"] = threads(proc.pid)
        idle = []
        for _ in range(args.idle):
            try:
                idle.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            except OSError as e:
                errors = report.setdefault("idle_connect_errors", {})
                errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
            time.sleep(0.01)
        time.sleep(1)
        report["threads_with_idle"] = threads(proc.pid)
        report["while_idle"] = rounds(port)
        for s in idle:
            s.close()
        time.sleep(2)
        report["after_idle_closed"] = rounds(port)
        report["threads_after"] = threads(proc.pid)
        report["alive"] = proc.poll() is None
    finally:
        proc.kill()
        proc.wait()
        log.seek(0)
        lines = [l.strip()[25:] for l in log
                 if "thread" in l or "panick" in l or "accept" in l or "at most" in l]
        report["log"] = lines[:8]
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
