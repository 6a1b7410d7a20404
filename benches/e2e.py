#!/usr/bin/env python3
"""End to end against the real Firefox Sync server (not part of `cargo test`).

    benches/e2e.py [--runs 3] [--records 10000] [--page 1000] [--bin PATH] [--peer DIR]

What a user feels: N records pulled with Kinto.js `sync()` through Syncto, and
the same records fetched straight from the Sync node by a direct Hawk client
(the listing Syncto asks for: full=1, sort=newest, pages of --page records),
plus the same pull through Syncto without Kinto.js (a plain fetch loop
following Next-Page), so that Syncto's added time is not mixed with Kinto.js's
own work. Then the first request of a new user (the Token Server exchange
included: users the Token Server has never seen) and the next one (credentials
cached), through Syncto and direct, five users each way per run.

Each run seeds a fresh user with N real-shaped records (direct Hawk POSTs of
100, 11 ms apart). Syncto's CPU is measured exactly (os.wait4 of its own
process, less a fresh one that only did the warm-up request); the Sync
server's (syncserver and PostgreSQL) from /proc in clock ticks. Each run pulls
three times each way, alternating direct and through Syncto, and takes the
medians. Prints one line per run and a min-max table.

Needs the real server (peer.sh: PEER_SH, else ../shared/syncstorage/peer.sh
beside the checkout, else /work/shared/syncstorage/peer.sh), node and the client
packages of tests/clients (installed here with `npm ci` when missing).
--peer DIR (or PEER_DIR) uses a peer already started there; otherwise
one is started in a temporary directory and stopped at the end.
"""

import argparse
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import HZ, cpu_ms, span  # noqa: E402

MJS = os.path.join(common.ROOT, "benches", "e2e.mjs")
# Pulls each way in a run (alternating direct and through Syncto): medians.
PULLS = 3


def server_cpu(peer):
    """CPU ticks of syncserver and of PostgreSQL (the postmaster and its backends)."""
    sync_pid = int(peer["PEER_SYNCSERVER_PID"])
    pg = int(peer["PEER_POSTGRES_PID"])
    total = {}
    for pid in [sync_pid, pg] + common.children(pg):
        try:
            total[pid] = common.ticks(pid)
        except OSError:
            pass
    return total


class Syncto(common.Syncto):
    """A fresh Syncto; stop() returns the CPU it used, in ms (rusage, exact)."""

    def __init__(self, binary, token_url, page, tmp):
        ini = common.write_ini(os.path.join(tmp, "syncto.ini"), token_server_url=token_url, paginate_by=page)
        self.log = open(os.path.join(tmp, "syncto.log"), "ab")
        super().__init__(binary, config=ini, env=common.env_without_syncto(), log=self.log)
        self.wait(pause=0.02)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        _, status, usage = os.wait4(self.proc.pid, 0)
        self.proc.returncode = status
        self.log.close()
        return (usage.ru_utime + usage.ru_stime) * 1000


def node(*args):
    return common.node(MJS, *args, timeout=300)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--records", type=int, default=10000)
    ap.add_argument("--page", type=int, default=1000, help="Syncto's paginate_by, the direct client's limit")
    ap.add_argument("--users", type=int, default=5, help="new users per run for the first-request figures")
    ap.add_argument("--bin", help="a syncto binary (default: cargo build --release)")
    ap.add_argument("--peer", default=os.environ.get("PEER_DIR"))
    a = ap.parse_args()

    binary = common.release_binary(a.bin)
    common.npm_ci()

    tmp = tempfile.mkdtemp(prefix="syncto-e2e-")
    upstream = None
    try:
        upstream = common.Peer(a.peer, tmp)
        peer, token_url, user = upstream.env, upstream.token_url, upstream.token

        print(
            f"# {time.strftime('%Y-%m-%d')} {os.cpu_count()} cores, syncstorage-rs {peer.get('PEER_VERSION', '?')} "
            f"+ PostgreSQL, Syncto {common.git_rev()} ({binary}), {a.records} records in pages of {a.page}, "
            f"{a.runs} runs"
        )
        rows = []
        for run in range(1, a.runs + 1):
            r = {}
            u = user()
            coll = f"bench{run}"
            seeded = node("seed", token_url, u, coll, str(a.records))
            r["seed_ms"] = seeded["ms"]

            # Syncto's CPU for a pull = a Syncto that warmed up and pulled, less
            # one that only warmed up (start, token exchange, 10 records, stop).
            s = Syncto(binary, token_url, a.page, tmp)
            node("first-syncto", s.url, u, coll)
            warm = s.stop()

            # PULLS pulls each way, alternating, on the same Syncto: medians.
            s = Syncto(binary, token_url, a.page, tmp)
            node("first-syncto", s.url, u, coll)
            ds, ps, d_cpu, p_cpu = [], [], 0, 0
            for _ in range(PULLS):
                before = server_cpu(peer)
                ds.append(node("direct", token_url, u, coll, str(a.page)))
                middle = server_cpu(peer)
                ps.append(node("plain", s.url, u, coll))
                d_cpu += cpu_ms(before, middle)
                p_cpu += cpu_ms(middle, server_cpu(peer))
            r["plain_cpu_ms"] = (s.stop() - warm) / PULLS
            r["server_direct_ms"], r["server_syncto_ms"] = d_cpu / PULLS, p_cpu / PULLS
            r["direct_ms"] = statistics.median(x["ms"] for x in ds)
            r["plain_ms"] = statistics.median(x["ms"] for x in ps)

            s = Syncto(binary, token_url, a.page, tmp)
            node("first-syncto", s.url, u, coll)
            ks = [node("kinto", s.url, u, coll) for _ in range(PULLS)]
            r["kinto_cpu_ms"] = (s.stop() - warm) / PULLS
            r["kinto_ms"] = statistics.median(x["ms"] for x in ks)
            for got, name in [(x, "direct") for x in ds] + [(x, "plain") for x in ps] + [(x, "Kinto.js") for x in ks]:
                if got["records"] != a.records:
                    sys.exit(f"{name} pull got {got['records']} records of {a.records}")

            s = Syncto(binary, token_url, a.page, tmp)
            via = [node("first-syncto", s.url, user(), coll) for _ in range(a.users)]
            s.stop()
            direct = [node("first-direct", token_url, user(), coll) for _ in range(a.users)]
            for key, sample in (("syncto", via), ("direct", direct)):
                r[f"first_{key}_ms"] = statistics.median(x["first"] for x in sample)
                r[f"cached_{key}_ms"] = statistics.median(x["cached"] for x in sample)
            r["added_pct"] = (r["plain_ms"] - r["direct_ms"]) / r["direct_ms"] * 100
            r["cpu_pct"] = r["plain_cpu_ms"] / r["direct_ms"] * 100
            rows.append(r)
            print(
                f"# run {run}: seed {r['seed_ms']:.0f} ms; pull direct {r['direct_ms']:.0f} ms, "
                f"through Syncto {r['plain_ms']:.0f} ms (+{r['added_pct']:.1f} %), Kinto.js sync() {r['kinto_ms']:.0f} ms; "
                f"Syncto CPU {r['plain_cpu_ms']:.1f} ms (Kinto.js pull {r['kinto_cpu_ms']:.1f} ms); "
                f"first request {r['first_syncto_ms']:.1f} / direct {r['first_direct_ms']:.1f} ms, "
                f"cached {r['cached_syncto_ms']:.1f} / {r['cached_direct_ms']:.1f} ms",
                flush=True,
            )

        col = lambda k: [r[k] for r in rows]  # noqa: E731
        n = f"{a.records:,}"
        per_rec = [r["plain_cpu_ms"] * 1000 / a.records for r in rows]
        print()
        print(f"| {a.runs} runs, min–max | direct (Hawk) | through Syncto | Syncto adds |")
        print("|---|---|---|---|")
        print(
            f"| pull {n} records, pages of {a.page} (fetch loop) | {span(col('direct_ms'))} ms "
            f"| {span(col('plain_ms'))} ms | {span(col('added_pct'), '{:+.1f}')} % |"
        )
        print(f"| pull {n} records with Kinto.js `sync()` | – | {span(col('kinto_ms'))} ms | – |")
        print(
            f"| Syncto's CPU for the pull (fetch loop / Kinto.js) | – | {span(col('plain_cpu_ms'), '{:.1f}')} / "
            f"{span(col('kinto_cpu_ms'), '{:.1f}')} ms ({span(per_rec, '{:.2f}')} µs a record) "
            f"| {span(col('cpu_pct'), '{:.1f}')} % of the direct time |"
        )
        print(
            f"| Sync server's CPU for the pull (syncserver + PostgreSQL, 1/{HZ} s ticks) "
            f"| {span(col('server_direct_ms'))} ms | {span(col('server_syncto_ms'))} ms | |"
        )
        print(
            f"| first request of a new user, 10 records (Token Server exchange included; median of {a.users}) "
            f"| {span(col('first_direct_ms'), '{:.1f}')} ms | {span(col('first_syncto_ms'), '{:.1f}')} ms | |"
        )
        print(
            f"| the next request (credentials cached) | {span(col('cached_direct_ms'), '{:.1f}')} ms "
            f"| {span(col('cached_syncto_ms'), '{:.1f}')} ms | |"
        )
    finally:
        if upstream:
            upstream.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
