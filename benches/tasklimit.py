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
import socket
import subprocess
import tempfile
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


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
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return None


def rounds(port, n=20):
    out = {}
    for _ in range(n):
        s = str(get(port, "/v1/__lbheartbeat__"))
        out[s] = out.get(s, 0) + 1
    return out


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bin", default=os.path.join(os.path.dirname(here), "target/release/syncto"))
    p.add_argument("--nproc", type=int, default=40)
    p.add_argument("--idle", type=int, default=60)
    p.add_argument("--max-connections", help="SYNCTO_MAX_CONNECTIONS (default: derived)")
    args = p.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root (the server runs as nobody under the limit)")
    port = free_port()
    env = dict(os.environ, SYNCTO_TOKEN_SERVER_URL="http://127.0.0.1:9/")
    env.pop("SYNCTO_INI", None)
    if args.max_connections:
        env["SYNCTO_MAX_CONNECTIONS"] = args.max_connections
    log = tempfile.TemporaryFile("w+")
    proc = subprocess.Popen(
        ["prlimit", f"--nproc={args.nproc}:{args.nproc}", "setpriv", "--reuid=65534",
         "--regid=65534", "--clear-groups", args.bin, "--bind", f"127.0.0.1:{port}"],
        env=env, stdout=subprocess.DEVNULL, stderr=log)
    report = {"binary": args.bin, "nproc": args.nproc, "idle": args.idle,
              "max_connections": args.max_connections or "default"}
    try:
        deadline = time.monotonic() + 20
        while get(port, "/v1/__lbheartbeat__", 1) != 200:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("syncto did not start")
            time.sleep(0.1)
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
