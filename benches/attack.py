#!/usr/bin/env python3
"""Hostile-client attacks against a Syncto binary (not part of `cargo test`).

    benches/attack.py [--bin target/release/syncto] [--fake target/release/examples/fake_upstream]
                      [--seconds 20] [scenario ...]

Scenarios (all by default): idle, slowloris, blackhole, framing, upgrade; and `cases`,
which only sends each framing case once and reports what came back.

Each scenario starts the fake Token Server + Sync node (`examples/fake_upstream`, 10
records) and a Syncto with default settings on 127.0.0.1, warms the credentials cache,
then runs the attack while a normal client makes 200 sequential `GET /v1/__lbheartbeat__`
and 20 sequential records GETs (a new connection each, at most 40 s for each kind). It
reports the peak threads, RSS and descriptors of the Syncto process during the attack,
the normal client's p50/p99 latency and statuses, and whether Syncto still serves once
the attack stops. Everything is bounded in count and time and stops by itself.

- idle: 520 connections that send nothing (re-opened when closed), Syncto under
  `ulimit -n 1024` (soft and hard);
- slowloris: 1,500 connections that send half a request head and stop;
- blackhole: the Token Server accepts and never answers for 8 attackers' tokens, which
  keep 8 record requests in flight (upstream_timeout_seconds = 20); the normal client's
  token is answered;
- framing: the framing/smuggling cases of issue 9 in a loop (each also reported once:
  answers, first status, closed or not);
- upgrade: 8 sockets that send `Connection: Upgrade` and stay open.
"""

import argparse
import json
import math
import re
import os
import resource
import selectors
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
GOOD = {"Authorization": "Bearer bench-token"}


def raise_own_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Fake(common.Fake):
    def __init__(self, path):
        super().__init__(path, "--seconds", "900", "--seed", "10")


class Syncto(common.Syncto):
    def __init__(self, path, token_url, nofile=None, env=None, logdir="."):
        port = common.free_port()
        self.log = open(os.path.join(logdir, f"syncto-{port}.log"), "w+")

        def limit():
            if nofile:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        super().__init__(path, env=common.env_with(SYNCTO_TOKEN_SERVER_URL=token_url, **(env or {})),
                         log=self.log, stdout=subprocess.DEVNULL, preexec_fn=limit, port=port)
        self.wait(lambda: get(self.port, "/v1/__lbheartbeat__", timeout=1)[1] == 200)

    def stats(self):
        pid = self.proc.pid
        try:
            threads = common.threads(pid)
            fds = common.fds(pid)
            rss = common.status_kb(pid, "VmRSS")
        except OSError:
            return None
        if rss is None:
            return None
        return {"threads": threads, "rss_kb": rss, "fds": fds}

    def log_text(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def stop(self):
        self.kill()
        self.log.close()


def get(port, path, headers=None, timeout=30.0):
    t0 = time.monotonic()
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        r.read()
        status = r.status
        c.close()
    except Exception as e:  # the point is to record what a client sees
        status = type(e).__name__
    return time.monotonic() - t0, status


def quantile(values, q):
    if not values:
        return None
    v = sorted(values)
    return v[max(0, math.ceil(q * len(v)) - 1)]


def normal_client(port, kind, path, headers, count, budget):
    lat, statuses = [], {}
    deadline = time.monotonic() + budget
    for _ in range(count):
        if time.monotonic() >= deadline:
            break
        t, s = get(port, path, headers)
        lat.append(t)
        statuses[str(s)] = statuses.get(str(s), 0) + 1
    return {
        "kind": kind, "n": len(lat),
        "p50_ms": round(quantile(lat, 0.5) * 1000, 1) if lat else None,
        "p99_ms": round(quantile(lat, 0.99) * 1000, 1) if lat else None,
        "statuses": statuses,
    }


class Sampler(threading.Thread):
    def __init__(self, syncto):
        super().__init__(daemon=True)
        self.syncto, self.stop_ev, self.peak = syncto, threading.Event(), {}

    def run(self):
        while not self.stop_ev.is_set():
            s = self.syncto.stats()
            if s:
                for k, v in s.items():
                    self.peak[k] = max(self.peak.get(k, 0), v)
            time.sleep(0.25)


class Holders(threading.Thread):
    """Keep `n` connections open to `port`, each sending `payload` once; a closed one is
    re-opened (at most every 0.1 s per slot). Answers are read and dropped."""

    def __init__(self, port, n, payload, stop_ev):
        super().__init__(daemon=True)
        self.port, self.n, self.payload, self.stop_ev = port, n, payload, stop_ev
        self.opened = self.refused = self.closed = 0

    def connect(self):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", self.port))
        except BlockingIOError:
            pass
        except OSError:
            s.close()
            return None
        self.opened += 1
        return s

    def run(self):
        sel = selectors.DefaultSelector()
        slots = [None] * self.n
        retry = [0.0] * self.n
        while not self.stop_ev.is_set():
            now = time.monotonic()
            for i in range(self.n):
                if slots[i] is None and now >= retry[i]:
                    s = self.connect()
                    retry[i] = now + 0.1
                    if s is not None:
                        slots[i] = s
                        sel.register(s, selectors.EVENT_WRITE, (i, False))
            for key, events in sel.select(timeout=0.2):
                s, (i, sent) = key.fileobj, key.data
                if events & selectors.EVENT_WRITE and not sent:
                    try:
                        s.send(self.payload)
                    except OSError:
                        pass
                    sel.modify(s, selectors.EVENT_READ, (i, True))
                    continue
                try:
                    data = s.recv(65536)
                except OSError:
                    data = b""
                if data.startswith(b"HTTP/1.1 503"):
                    self.refused += 1
                if not data:
                    self.closed += 1
                    sel.unregister(s)
                    s.close()
                    slots[i] = None
        for s in slots:
            if s is not None:
                s.close()
        sel.close()


def black_hole_proxy(target, stop_ev):
    """A Token Server in front of the fake one: requests whose head mentions `attack` are
    held and never answered; the others are forwarded (Connection: close)."""
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(256)
    lsock.settimeout(0.2)
    host, port = target.split("//")[1].strip("/").split(":")
    held = []

    def serve(conn):
        conn.settimeout(30)
        head = b""
        try:
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                head += chunk
        except OSError:
            return
        if b"attack" in head:
            held.append(conn)
            return
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = dict(l.split(": ", 1) for l in lines[1:] if ": " in l)
        headers.pop("Host", None)
        c = http.client.HTTPConnection(host, int(port), timeout=10)
        c.request(method, path, headers=headers)
        r = c.getresponse()
        body = r.read()
        out = f"HTTP/1.1 {r.status} X\r\nContent-Type: application/json\r\n" \
              f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body
        conn.sendall(out)
        conn.close()

    def loop():
        while not stop_ev.is_set():
            try:
                conn, _ = lsock.accept()
            except socket.timeout:
                continue
            threading.Thread(target=serve, args=(conn,), daemon=True).start()
        for c in held:
            c.close()
        lsock.close()

    threading.Thread(target=loop, daemon=True).start()
    return f"http://127.0.0.1:{lsock.getsockname()[1]}/"


def attackers_in_flight(port, n, stop_ev):
    counter = {"sent": 0}

    def one(i):
        k = 0
        while not stop_ev.is_set():
            k += 1
            counter["sent"] += 1
            get(port, RECORDS, {"Authorization": f"Bearer attack-{i}-{k}"}, timeout=60)

    for i in range(n):
        threading.Thread(target=one, args=(i,), daemon=True).start()
    return counter


UPGRADE = (b"GET /v1/ HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
LB = b"GET /v1/__lbheartbeat__ HTTP/1.1\r\nHost: x\r\n\r\n"
PUT_HEAD = f"PUT /v1/buckets/{KID}/collections/tabs/records/a HTTP/1.1\r\nHost: x\r\n" \
           "Authorization: Bearer t\r\nContent-Type: application/json\r\n"
FRAMING = {
    "two Content-Length": PUT_HEAD.encode() + b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}" + LB,
    "Content-Length: abc": PUT_HEAD.encode() + b"Content-Length: abc\r\n\r\n{}" + LB,
    "CL + TE chunked": PUT_HEAD.encode()
    + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + LB,
    "TE gzip": PUT_HEAD.encode() + b"Transfer-Encoding: gzip\r\n\r\n0\r\n\r\n" + LB,
    "CL 5 MB + pipelined": PUT_HEAD.encode() + b"Content-Length: 5000000\r\n\r\n" + LB * 2000,
    "chunked over max + pipelined": PUT_HEAD.encode() + b"Transfer-Encoding: chunked\r\n\r\n"
    + b"%x\r\n" % len(LB * 70000) + LB * 70000 + b"\r\n0\r\n\r\n" + LB,
    "LF in path (Set-Cookie)": b"GET /x\nSet-Cookie:session=attacker HTTP/1.1\r\nHost: a\r\n\r\n",
    "NUL in header": b"GET /v1/ HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n" + LB,
    "bare LF head": b"GET /v1/ HTTP/1.1\nHost: a\n\n",
    "HTTP/2 preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
}


def exchange(port, data, timeout=10.0):
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(timeout)
    t0 = time.monotonic()
    try:
        s.sendall(data)
    except OSError:
        pass
    out, timed_out = common.read_to_end(s)
    s.close()
    return out, not timed_out, time.monotonic() - t0


def describe(out, closed, secs):
    """How many answers came back (pipelined ones follow a body directly), the first status
    line, whether a Set-Cookie header was injected, and whether the server closed."""
    statuses = re.findall(rb"HTTP/1\.[01] (\d{3}) ", out)
    first = out.split(b"\r\n", 1)[0].decode("latin-1") if out else None
    return {"answers": len(statuses), "first": first,
            "set_cookie": b"\nSet-Cookie" in out, "closed": closed, "seconds": round(secs, 2)}


def framing_cases(port):
    return {name: describe(*exchange(port, data)) for name, data in FRAMING.items()}


def framing_loop(port, stop_ev, results):
    first = True
    while not stop_ev.is_set():
        for name, data in FRAMING.items():
            if stop_ev.is_set():
                return
            out, closed, secs = exchange(port, data)
            if first:
                results[name] = describe(out, closed, secs)
        first = False


def scenario(name, args, logdir):
    fake = Fake(args.fake)
    stop_ev = threading.Event()
    token_url = fake.urls["TOKEN_URL"]
    env, nofile = {}, None
    if name == "idle":
        nofile = 1024
    if name == "blackhole":
        token_url = black_hole_proxy(fake.urls["TOKEN_URL"], stop_ev)
        env["SYNCTO_UPSTREAM_TIMEOUT_SECONDS"] = "20"
    s = Syncto(args.bin, token_url, nofile=nofile, env=env, logdir=logdir)
    report = {"scenario": name, "binary": args.bin}
    if name == "cases":
        try:
            report["framing"] = framing_cases(s.port)
        finally:
            s.stop()
            fake.stop()
        return report
    try:
        assert get(s.port, RECORDS, GOOD)[1] == 200, "records through the fake"
        report["idle_before"] = s.stats()
        extra = {}
        holders = None
        if name == "idle":
            holders = Holders(s.port, 520, b"", stop_ev)
        elif name == "slowloris":
            holders = Holders(s.port, 1500, b"GET /v1/ HTTP/1.1\r\nHost: x\r\n", stop_ev)
        elif name == "upgrade":
            holders = Holders(s.port, 8, UPGRADE, stop_ev)
        elif name == "blackhole":
            extra["attack"] = attackers_in_flight(s.port, 8, stop_ev)
        elif name == "framing":
            extra["cases"] = {}
            threading.Thread(target=framing_loop, args=(s.port, stop_ev, extra["cases"]),
                             daemon=True).start()
        if holders:
            holders.start()
        time.sleep(3)
        sampler = Sampler(s)
        sampler.start()
        started = time.monotonic()
        report["lbheartbeat"] = normal_client(s.port, "lbheartbeat", "/v1/__lbheartbeat__",
                                              {}, 200, 40)
        report["records"] = normal_client(s.port, "records", RECORDS, GOOD, 20, 40)
        left = args.seconds - (time.monotonic() - started)
        if left > 0:
            time.sleep(left)
        sampler.stop_ev.set()
        sampler.join()
        report["peak_during"] = sampler.peak
        stop_ev.set()
        if holders:
            holders.join(timeout=10)
            report["attack"] = {"opened": holders.opened, "refused_503": holders.refused,
                                "closed_by_server": holders.closed}
        if "attack" in extra:
            report["attack"] = {"requests_sent": extra["attack"]["sent"]}
        if "cases" in extra:
            time.sleep(1)
            report["framing"] = extra["cases"]
        # Once the attack stops, is it serving again (within 30 s)?
        deadline = time.monotonic() + 30
        served = None
        while time.monotonic() < deadline:
            t, st = get(s.port, "/v1/__lbheartbeat__", timeout=5)
            if st == 200:
                served = round(30 - (deadline - time.monotonic()), 1)
                break
            time.sleep(0.5)
        report["served_after_s"] = served
        report["after"] = s.stats()
        log = s.log_text()
        report["log_panics"] = log.count("panicked")
        report["log_accept_errors"] = sum(
            1 for l in log.splitlines() if "Error accepting" in l or "cannot accept" in l)
    finally:
        stop_ev.set()
        s.stop()
        fake.stop()
    return report


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    common.add_binary_args(p)
    p.add_argument("--seconds", type=float, default=20, help="minimum attack length")
    p.add_argument("scenarios", nargs="*",
                   default=["idle", "slowloris", "blackhole", "framing", "upgrade"])
    args = p.parse_args()
    raise_own_nofile()
    with tempfile.TemporaryDirectory() as logdir:
        for name in args.scenarios:
            r = scenario(name, args, logdir)
            print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
