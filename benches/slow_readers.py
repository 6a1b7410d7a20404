#!/usr/bin/env python3
"""Clients that ask for a large page and never read it (issue 17 items 1 and 5; not
part of `cargo test`).

    benches/slow_readers.py [--bin target/release/syncto]
                            [--fake target/release/examples/fake_upstream]
                            [--connections 40] [--seconds 10] [--tunables] [--download]

Starts the fake Token Server + Sync node with 1,000 records of about 15 KB (a page of
about 15 MB) and a Syncto with default settings but queue_timeout_milliseconds = 60000, so
that every request gets its page (`--tunables`: with the systemd unit's GLIBC_TUNABLES), warms its credentials cache, then opens --connections connections that
each ask for the page and never read. Samples the process's RSS and threads every
0.25 s for --seconds, closes them, and samples 5 s more. Reports the RSS at start, the
peak, the RSS 5 s after the connections closed, the peak threads, and what a normal
client meanwhile got (status and bytes of the page).

`--download` (item 5) instead sets max_connections = 16, starts one client reading the
page at about 4 MB/s, and opens 40 bare connections (nothing sent) while it reads;
reports how many bytes the download got and whether it was cut.

Bounded: every socket has a timeout, the processes are killed at the end.
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import http.client

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

KID = "1234-Yw3NKWbEM2aRElRIu7JbTw"
RECORDS = f"/v1/buckets/{KID}/collections/bench/records"
AUTH = "Bearer slow-readers"


def stats(pid):
    try:
        rss = common.status_kb(pid, "VmRSS")
        return (rss, common.threads(pid)) if rss is not None else (None, None)
    except OSError:
        return None, None


def get_page(port, timeout=60):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    c.request("GET", RECORDS, headers={"Authorization": AUTH})
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, len(body)


def request_bytes():
    return (f"GET {RECORDS} HTTP/1.1\r\nHost: x\r\nAuthorization: {AUTH}\r\n\r\n").encode()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    common.add_binary_args(p)
    p.add_argument("--connections", type=int, default=40)
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--tunables", action="store_true",
                   help="GLIBC_TUNABLES as etc/syncto.service sets it")
    p.add_argument("--download", action="store_true")
    args = p.parse_args()

    fake = common.Fake(args.fake, "--seconds", "300", "--seed", "1000", "--seed-size", "15000")
    env = common.env_with(SYNCTO_TOKEN_SERVER_URL=fake.token_url)
    if args.tunables:
        env["GLIBC_TUNABLES"] = common.glibc_tunables()
    # Every one of them gets its page (none shed for want of a free worker).
    env["SYNCTO_QUEUE_TIMEOUT_MILLISECONDS"] = "60000"
    if args.download:
        env["SYNCTO_MAX_CONNECTIONS"] = "16"
    log = tempfile.TemporaryFile("w+")
    server = common.Syncto(args.bin, env=env, log=log, stdout=subprocess.DEVNULL)
    port, proc = server.port, server.proc
    report = {"binary": args.bin, "tunables": env.get("GLIBC_TUNABLES")}
    held = []
    try:
        status, size = server.wait(lambda: get_page(port))
        report["page"] = {"status": status, "bytes": size}
        time.sleep(1)
        report["rss_kb_start"], report["threads_start"] = stats(proc.pid)
        if args.download:
            report.update(download(port, size))
        else:
            for _ in range(args.connections):
                s = socket.create_connection(("127.0.0.1", port), timeout=10)
                s.sendall(request_bytes())
                held.append(s)
            normal = {}
            t = threading.Thread(target=lambda: normal.update(
                zip(("status", "bytes"), safe(get_page, port))), daemon=True)
            t.start()
            peak_rss, peak_threads = 0, 0
            end = time.monotonic() + args.seconds
            while time.monotonic() < end:
                rss, threads = stats(proc.pid)
                peak_rss, peak_threads = max(peak_rss, rss or 0), max(peak_threads, threads or 0)
                time.sleep(0.25)
            t.join(timeout=90)
            report["normal_client_meanwhile"] = normal
            report["rss_kb_peak"], report["threads_peak"] = peak_rss, peak_threads
            # What each of them got: the status, and whether the answer was cut
            # (closed before its end) or is still waiting for them.
            got = {}
            for s in held:
                s.settimeout(0.5)
                data, closed = b"", False
                n = 0
                try:
                    while n < 32 << 20:
                        chunk = s.recv(1 << 20)
                        if not chunk:
                            closed = True
                            break
                        if not data:
                            data = chunk[:16]
                        n += len(chunk)
                except socket.timeout:
                    pass
                except OSError:
                    closed = True
                status = data[9:12].decode("latin-1") if data.startswith(b"HTTP/1.1") else "-"
                kind = f"{status} " + ("closed" if closed else "open")
                got[kind] = got.get(kind, 0) + 1
            report["held_connections"] = got
            for s in held:
                s.close()
            held = []
            time.sleep(5)
            report["rss_kb_5s_after_close"], report["threads_after"] = stats(proc.pid)
        report["alive"] = proc.poll() is None
    finally:
        for s in held:
            s.close()
        proc.kill()
        proc.wait()
        fake.stop()
        log.seek(0)
        report["log_warnings"] = [l.strip()[25:] for l in log if " WARN " in l or " ERROR " in l][:5]
    print(json.dumps(report, indent=1))


def safe(f, *a):
    try:
        return f(*a)
    except Exception as e:  # what a client sees
        return (type(e).__name__, 0)


def download(port, size):
    """One client reads the page at about 4 MB/s (64 KiB every 16 ms) while 40 bare
    connections arrive at max_connections = 16."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(request_bytes())
    got = {"bytes": 0, "cut": False}

    def read():
        total = 0
        try:
            while True:
                data = s.recv(64 * 1024)
                if not data:
                    got["cut"] = True
                    break
                total += len(data)
                got["bytes"] = total
                if total >= size:
                    break
                time.sleep(0.016)
        except OSError:
            got["cut"] = True

    t = threading.Thread(target=read, daemon=True)
    t.start()
    time.sleep(0.5)
    bare = []
    for _ in range(40):
        try:
            bare.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        except OSError:
            pass
        time.sleep(0.02)
    t.join(timeout=60)
    for b in bare:
        b.close()
    s.close()
    return {"download_bytes": got["bytes"], "download_of": size,
            "download_cut": got["cut"] or got["bytes"] < size}


if __name__ == "__main__":
    main()
