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
import tempfile
import threading
import time
import http.client

KID = "1234-Yw3NKWbEM2aRElRIu7JbTw"
RECORDS = f"/v1/buckets/{KID}/collections/bench/records"
AUTH = "Bearer slow-readers"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def stats(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS"))
        return rss, len(os.listdir(f"/proc/{pid}/task"))
    except (OSError, StopIteration):
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
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bin", default=os.path.join(root, "target/release/syncto"))
    p.add_argument("--fake", default=os.path.join(root, "target/release/examples/fake_upstream"))
    p.add_argument("--connections", type=int, default=40)
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--tunables", action="store_true",
                   help="GLIBC_TUNABLES as etc/syncto.service sets it")
    p.add_argument("--download", action="store_true")
    args = p.parse_args()

    fake = subprocess.Popen([args.fake, "--seconds", "300", "--seed", "1000",
                             "--seed-size", "15000"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    urls = {}
    while "SYNC_URL" not in urls:
        line = fake.stdout.readline()
        if not line:
            raise SystemExit("fake_upstream did not start")
        k, _, v = line.strip().partition("=")
        urls[k] = v
    port = free_port()
    env = dict(os.environ, SYNCTO_TOKEN_SERVER_URL=urls["TOKEN_URL"])
    env.pop("SYNCTO_INI", None)
    if args.tunables:
        unit = open(os.path.join(root, "etc/syncto.service")).read()
        tunables = next(l.split("GLIBC_TUNABLES=", 1)[1].strip()
                        for l in unit.splitlines() if "GLIBC_TUNABLES=" in l)
        env["GLIBC_TUNABLES"] = tunables
    # Every one of them gets its page (none shed for want of a free worker).
    env["SYNCTO_QUEUE_TIMEOUT_MILLISECONDS"] = "60000"
    if args.download:
        env["SYNCTO_MAX_CONNECTIONS"] = "16"
    log = tempfile.TemporaryFile("w+")
    proc = subprocess.Popen([args.bin, "--bind", f"127.0.0.1:{port}"], env=env,
                            stdout=subprocess.DEVNULL, stderr=log)
    report = {"binary": args.bin, "tunables": env.get("GLIBC_TUNABLES")}
    held = []
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                status, size = get_page(port)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("syncto did not start")
                time.sleep(0.1)
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
        fake.stdin.close()
        fake.wait(timeout=10)
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
