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
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MJS = os.path.join(ROOT, "benches", "e2e.mjs")
HZ = os.sysconf("SC_CLK_TCK")
# Pulls each way in a run (alternating direct and through Syncto): medians.
PULLS = 3


def peer_sh():
    for p in (
        os.environ.get("PEER_SH"),
        os.path.join(ROOT, "..", "shared", "syncstorage", "peer.sh"),
        "/work/shared/syncstorage/peer.sh",
    ):
        if p and os.path.isfile(p):
            return p
    sys.exit("peer.sh not found (set PEER_SH)")


def env_file(path):
    out = {}
    with open(path) as f:
        for line in f:
            k, _, v = line.strip().partition("=")
            out[k] = v
    return out


def ticks(pid):
    """utime + stime of a process, in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def children(pid):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(d))
            except OSError:
                pass
    return out


def server_cpu(peer):
    """CPU ticks of syncserver and of PostgreSQL (the postmaster and its backends)."""
    sync_pid = int(peer["PEER_SYNCSERVER_PID"])
    pg = int(peer["PEER_POSTGRES_PID"])
    total = {}
    for pid in [sync_pid, pg] + children(pg):
        try:
            total[pid] = ticks(pid)
        except OSError:
            pass
    return total


def cpu_ms(before, after):
    return sum(after[p] - before.get(p, 0) for p in after) * 1000 / HZ


class Syncto:
    """A fresh Syncto; stop() returns the CPU it used, in ms (rusage, exact)."""

    def __init__(self, binary, token_url, page, tmp):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        ini = os.path.join(tmp, "syncto.ini")
        with open(ini, "w") as f:
            f.write(f"[app:main]\ntoken_server_url = {token_url}\npaginate_by = {page}\n")
        self.log = open(os.path.join(tmp, "syncto.log"), "ab")
        self.proc = subprocess.Popen(
            [binary, "--config", ini, "--bind", f"127.0.0.1:{self.port}"],
            stdout=self.log,
            stderr=self.log,
        )
        self.url = f"http://127.0.0.1:{self.port}/v1"
        for _ in range(200):
            try:
                urllib.request.urlopen(self.url + "/__lbheartbeat__", timeout=1).read()
                return
            except OSError:
                time.sleep(0.02)
        sys.exit("syncto did not start")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        _, status, usage = os.wait4(self.proc.pid, 0)
        self.proc.returncode = status
        self.log.close()
        return (usage.ru_utime + usage.ru_stime) * 1000


def node(*args):
    out = subprocess.run(["node", MJS, *args], capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        sys.exit(f"node {args[0]} failed: {out.stderr.strip()[-500:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def span(values, fmt="{:.0f}"):
    lo, hi = min(values), max(values)
    return fmt.format(lo) if fmt.format(lo) == fmt.format(hi) else f"{fmt.format(lo)}–{fmt.format(hi)}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--records", type=int, default=10000)
    ap.add_argument("--page", type=int, default=1000, help="Syncto's paginate_by, the direct client's limit")
    ap.add_argument("--users", type=int, default=5, help="new users per run for the first-request figures")
    ap.add_argument("--bin", help="a syncto binary (default: cargo build --release)")
    ap.add_argument("--peer", default=os.environ.get("PEER_DIR"))
    a = ap.parse_args()

    binary = a.bin
    if not binary:
        subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "syncto"], cwd=ROOT, check=True)
        binary = os.path.join(ROOT, "target", "release", "syncto")
    clients = os.path.join(ROOT, "tests", "clients")
    if not os.path.isdir(os.path.join(clients, "node_modules", "kinto")):
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"],
            cwd=clients,
            check=True,
            env={**os.environ, "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD": "1"},
        )

    psh = peer_sh()
    tmp = tempfile.mkdtemp(prefix="syncto-e2e-")
    os.chmod(tmp, 0o711)  # PostgreSQL runs as its own user and must reach its dir
    started = a.peer is None
    peer_dir = a.peer or os.path.join(tmp, "peer")
    try:
        if started:
            subprocess.run(
                ["bash", psh, "start", peer_dir],
                check=True,
                env={**os.environ, "PEER_SYNC_PORT": "0", "PEER_PG_PORT": "0"},
                stdout=subprocess.DEVNULL,
            )
        peer = env_file(os.path.join(peer_dir, "peer.env"))
        token_url = peer["PEER_TOKEN_SERVER_URL"]

        def user():
            out = subprocess.run(
                ["bash", psh, "token", peer_dir, os.urandom(16).hex(), os.urandom(16).hex(), "--json"],
                check=True,
                capture_output=True,
                text=True,
            )
            return out.stdout.strip()

        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        print(
            f"# {time.strftime('%Y-%m-%d')} {os.cpu_count()} cores, syncstorage-rs {peer.get('PEER_VERSION', '?')} "
            f"+ PostgreSQL, Syncto {rev.stdout.strip()} ({binary}), {a.records} records in pages of {a.page}, "
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
        if started and os.path.isdir(peer_dir):
            subprocess.run(["bash", psh, "stop", peer_dir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
