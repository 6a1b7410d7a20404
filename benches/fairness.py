#!/usr/bin/env python3
"""One user's many concurrent writes beside another user's reads (not part of `cargo test`).

    benches/fairness.py [--seconds 10] [--loops 128] [--bin PATH] [--peer DIR | --fake PATH]
                        [--workers N] [--max-per-loop 500] [--heavy-tokens 1]

A heavy user runs --loops concurrent PUT loops (each its own connection, a new record id per
PUT) on one collection for --seconds, while another user reads a page of its own records in
a loop (one connection, 20 ms between reads). With --heavy-tokens K the heavy user's loops
use K different tokens of the same account (round robin): K lanes for one account. Syncto runs with its defaults but for writes
enabled on that collection (and --workers if given).

What it checks, and prints:
- the other user's reads: p50, p90, max, and how many were not 200 (none should be a 503);
- the heavy user's writes: 2xx, 503 with Retry-After (clean: it never ran), anything else;
- what the Sync node stored for the heavy user: every write answered 2xx is stored, no write
  answered 503 is, nothing else is (a write whose connection failed may be either);
- Syncto's peak RSS (VmHWM).
Exit status 1 if a write was lost or one answered 503 was stored, or a 503 had no
Retry-After.

Upstream: the real Firefox Sync server (peer.sh: PEER_SH, else
../shared/syncstorage/peer.sh, else /work/shared/syncstorage/peer.sh; --peer DIR or
PEER_DIR uses one already started, else one is started in a temporary directory and
stopped at the end), or with --fake PATH the fake Token Server + Sync node
(target/release/examples/fake_upstream), which refuses a user's same-tick writes to a
collection as the real one does: a quick loop while developing.

Bounded: --seconds of load, at most --max-per-loop PUTs per loop, 30 s per request.
"""

import argparse
import http.client
import json
import os
import re
import sys
import tempfile
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

COLL = "tabs"


class Fake(common.Fake):
    """examples/fake_upstream: two fake users, any token works."""

    def __init__(self, path, seconds):
        super().__init__(path, "--seconds", str(seconds))

    def users(self, tokens):
        heavy = [
            {"Authorization": f"Bearer heavy-user-{k}", "X-KeyID": "1234-Yw3NKWbEM2aRElRIu7JbTw"}
            for k in range(tokens)
        ]
        return heavy, {"Authorization": "Bearer other-user", "X-KeyID": "5678-Yw3NKWbEM2aRElRIu7JbTw"}


class Peer(common.Peer):
    """The real Token Server + Sync node, two fresh users."""

    def user(self, uid=None, state=None):
        t = json.loads(self.token(uid or str(int.from_bytes(os.urandom(4), "big")), state))
        return {"Authorization": t["Authorization"], "X-KeyID": t["X-KeyID"]}

    def users(self, tokens):
        uid, state = str(int.from_bytes(os.urandom(4), "big")), os.urandom(16).hex()
        return [self.user(uid, state) for _ in range(tokens)], self.user()


class Syncto(common.Syncto):
    def __init__(self, binary, token_url, workers, tmp):
        settings = {"token_server_url": token_url, f"record_{COLL}_put_enabled": "true"}
        if workers:
            settings["workers"] = workers
        ini = common.write_ini(os.path.join(tmp, "syncto.ini"), **settings)
        self.log_path = os.path.join(tmp, "syncto.log")
        self.log = open(self.log_path, "ab")
        super().__init__(binary, config=ini, env=common.env_without_syncto(), log=self.log)
        self.wait(pause=0.02)

    def peak_rss_kib(self):
        return self.peak_rss_kb() or 0

    def workers_line(self):
        with open(self.log_path, errors="replace") as f:
            m = re.search(r"with (\d+) workers", f.read())
        return m.group(1) if m else "?"

    def stop(self):
        self.terminate(30)
        self.log.close()


def records_path(coll, rid=None):
    p = f"/v1/buckets/syncto/collections/{coll}/records"
    return p if rid is None else f"{p}/{urllib.parse.quote(rid)}"


def call(conn, method, path, headers, body=None):
    h = dict(headers)
    if body is not None:
        h["Content-Type"] = "application/json"
    conn.request(method, path, body=body, headers=h)
    r = conn.getresponse()
    data = r.read()
    return r.status, r.getheader("Retry-After"), r.getheader("Next-Page"), data


def stored_ids(port, user):
    """Every record id of the user's collection, following Next-Page."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    path = records_path(COLL) + "?_limit=1000"
    ids = []
    while path:
        status, _, nxt, data = call(conn, "GET", path, user)
        if status != 200:
            sys.exit(f"listing the heavy user's records: {status} {data[:200]!r}")
        ids += [r["id"] for r in json.loads(data)["data"]]
        path = urllib.parse.urlsplit(nxt)._replace(scheme="", netloc="").geturl() if nxt else None
    return ids


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--loops", type=int, default=128)
    ap.add_argument("--max-per-loop", type=int, default=500)
    ap.add_argument("--heavy-tokens", type=int, default=1, help="tokens of the heavy user's account")
    ap.add_argument("--workers", type=int, help="Syncto's workers (default: its own)")
    ap.add_argument("--bin", help="a syncto binary (default: cargo build --release)")
    ap.add_argument("--peer", default=os.environ.get("PEER_DIR"))
    ap.add_argument("--fake", help="examples/fake_upstream binary: fake upstreams instead of the real server")
    a = ap.parse_args()

    binary = common.release_binary(a.bin)
    tmp = tempfile.mkdtemp(prefix="syncto-fairness-")
    upstream = Fake(a.fake, int(a.seconds) + 300) if a.fake else Peer(a.peer, tmp)
    syncto = None
    try:
        heavies, other = upstream.users(a.heavy_tokens)
        heavy = heavies[0]
        syncto = Syncto(binary, upstream.token_url, a.workers, tmp)
        port = syncto.port
        # The other user's page: 10 records. Both users' credentials are fetched first.
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for i in range(10):
            status, _, _, data = call(c, "PUT", records_path(COLL, f"o{i}"), other, b'{"data": {"payload": "o"}}')
            assert status in (200, 201), (status, data)
        for h in heavies:
            assert call(c, "GET", records_path(COLL), h)[0] == 200

        stop_at = time.monotonic() + a.seconds
        writes = []  # (id, status, retry_after) or (id, None, error)
        reads = []  # (ms, status)
        lock = threading.Lock()

        def heavy_loop(n):
            heavy = heavies[n % len(heavies)]
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            for i in range(a.max_per_loop):
                if time.monotonic() >= stop_at:
                    break
                rid = f"h{n}-{i}"
                try:
                    status, ra, _, _ = call(conn, "PUT", records_path(COLL, rid), heavy, b'{"data": {"payload": "h"}}')
                    out = (rid, status, ra)
                except (OSError, http.client.HTTPException) as e:
                    out = (rid, None, type(e).__name__)
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                with lock:
                    writes.append(out)

        def reader():
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            while time.monotonic() < stop_at:
                t = time.monotonic()
                try:
                    status = call(conn, "GET", records_path(COLL) + "?_limit=10", other)[0]
                except (OSError, http.client.HTTPException):
                    status = None
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                reads.append(((time.monotonic() - t) * 1000, status))
                time.sleep(0.02)

        threads = [threading.Thread(target=heavy_loop, args=(n,)) for n in range(a.loops)]
        threads.append(threading.Thread(target=reader))
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started

        stored = stored_ids(port, heavy)
        rss = syncto.peak_rss_kib()
        workers = syncto.workers_line()
    finally:
        if syncto:
            syncto.stop()
        upstream.stop()

    ok = {w[0] for w in writes if w[1] in (200, 201)}
    shed = [w for w in writes if w[1] == 503]
    shed_ids = {w[0] for w in shed}
    failed = [w for w in writes if w[1] is None]
    other_status = [w for w in writes if w[1] not in (200, 201, 503, None)]
    unknown = {w[0] for w in failed}
    stored_set = set(stored)
    lost = ok - stored_set
    stored_though_refused = (stored_set & shed_ids) | {i for i in stored_set if i not in ok and i not in unknown}
    doubled = len(stored) - len(stored_set)
    no_retry_after = [w for w in shed if not w[2]]

    ms = sorted(r[0] for r in reads)
    read_status = {}
    for _, s in reads:
        read_status[s] = read_status.get(s, 0) + 1
    q = lambda p: ms[min(len(ms) - 1, int(p * len(ms)))] if ms else float("nan")
    where = "fake upstreams" if a.fake else "syncstorage-rs (real)"
    print(f"# {time.strftime('%Y-%m-%d')} {os.cpu_count()} cores, {where}, Syncto {binary}, {workers} workers, "
          f"{a.loops} PUT loops of one user ({a.heavy_tokens} token(s)) for {a.seconds:.0f} s beside one reader")
    print(f"other user's reads: {len(ms)}, p50 {q(0.5):.1f} ms, p90 {q(0.9):.1f} ms, max {max(ms, default=0):.1f} ms, "
          f"statuses {dict(sorted(read_status.items(), key=str))}")
    print(f"heavy user's writes: {len(writes)} in {elapsed:.1f} s: {len(ok)} 2xx ({len(ok) / elapsed:.0f}/s), "
          f"{len(shed)} 503 ({len(no_retry_after)} without Retry-After), {len(other_status)} other "
          f"{sorted({w[1] for w in other_status})}, {len(failed)} transport errors")
    print(f"stored: {len(stored)} records of the heavy user; lost (2xx, not stored): {len(lost)}; "
          f"stored though not 2xx: {len(stored_though_refused)}; doubled: {doubled}")
    print(f"syncto peak RSS: {rss / 1024:.1f} MiB")
    bad = lost or stored_though_refused or doubled or no_retry_after
    if read_status.get(503):
        print("the other user got 503s")
    if bad:
        print("FAILED: a write was lost, or one the client was told failed was stored, or a 503 had no Retry-After")
        sys.exit(1)


if __name__ == "__main__":
    main()
