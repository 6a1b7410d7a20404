#!/usr/bin/env python3
"""Push bench against the real Firefox Sync server (not part of `cargo test`).

    benches/push.py [--runs 3] [--records 200,1000] [--bin PATH] [--before PATH] [--peer DIR]

What a user feels when a device uploads: Kinto.js `sync()` pushing N creates, then N
updates, then N deletes through Syncto (batches of `batch_max_requests` as the hello
says: 100 with batched writes), beside the bound of the Sync server itself: the same
writes straight to the node as a direct Hawk client makes them at best, paced POSTs of
100 (then `DELETE ?ids=` of 100), one 11 ms tick after the previous answer as Syncto
paces a user's collection. With --before PATH, the same pushes through that Syncto
binary too (e.g. one built at 0d3dfb0, one paced Sync call per record and batches of
25: `git worktree add /tmp/old 0d3dfb0 && (cd /tmp/old && cargo build --release)`).

Each run uses fresh users (one per way and size), alternating the ways; records are
shaped as the design study's (about 600 bytes of encrypted-looking payload). Prints one
line per run and a min-max table, the ratio of Syncto's time to the bound, and each
Syncto's peak RSS (VmHWM).

Needs the real server (peer.sh: PEER_SH, else ../shared/syncstorage/peer.sh
beside the checkout, else /work/shared/syncstorage/peer.sh), node and the client
packages of tests/clients (installed here with `npm ci` when missing). --peer DIR (or
PEER_DIR) uses a peer already started there; otherwise one is started in a temporary
directory and stopped at the end.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MJS = os.path.join(ROOT, "benches", "push.mjs")
COLL = "history"
WHAT = ("creates", "updates", "deletes")


def peer_sh():
    for p in (
        os.environ.get("PEER_SH"),
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


class Syncto:
    """A Syncto with writes on `history`; stop() ends it."""

    def __init__(self, binary, token_url, tmp, name):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        ini = os.path.join(tmp, f"{name}.ini")
        with open(ini, "w") as f:
            f.write(
                f"[app:main]\ntoken_server_url = {token_url}\n"
                f"record_{COLL}_put_enabled = true\nrecord_{COLL}_delete_enabled = true\n"
            )
        env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCTO_")}
        self.log = open(os.path.join(tmp, f"{name}.log"), "ab")
        self.proc = subprocess.Popen(
            [binary, "--config", ini, "--bind", f"127.0.0.1:{self.port}"],
            stdout=self.log,
            stderr=self.log,
            env=env,
        )
        self.url = f"http://127.0.0.1:{self.port}/v1"
        for _ in range(250):
            try:
                hello = json.loads(urllib.request.urlopen(self.url + "/", timeout=1).read())
                self.batch = hello["settings"]["batch_max_requests"]
                return
            except OSError:
                time.sleep(0.02)
        sys.exit(f"{binary} did not start")

    def peak_rss_kb(self):
        """VmHWM: the most resident memory the process had."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        return 0

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def node(*args):
    out = subprocess.run(["node", MJS, *args], capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        sys.exit(f"node {args[0]} failed: {out.stderr.strip()[-500:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def span(values, fmt):
    lo, hi = fmt(min(values)), fmt(max(values))
    if lo == hi:
        return lo
    # "45–70 ms" rather than "45 ms–70 ms".
    lo_n, _, lo_unit = lo.partition(" ")
    hi_n, _, hi_unit = hi.partition(" ")
    return f"{lo_n}–{hi}" if lo_unit and lo_unit == hi_unit else f"{lo}–{hi}"


def ms(v):
    return f"{v / 1000:.2f} s" if v >= 1000 else f"{v:.0f} ms"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--records", default="200,1000", help="comma-separated sizes")
    ap.add_argument("--bin", help="the syncto binary measured (default: cargo build --release)")
    ap.add_argument("--before", help="another syncto binary measured the same way")
    ap.add_argument("--peer", default=os.environ.get("PEER_DIR"))
    a = ap.parse_args()
    sizes = [int(x) for x in a.records.split(",")]

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
    tmp = tempfile.mkdtemp(prefix="syncto-push-")
    os.chmod(tmp, 0o711)  # PostgreSQL runs as its own user and must reach its dir
    started = a.peer is None
    peer_dir = a.peer or os.path.join(tmp, "peer")
    servers = []
    try:
        if started:
            subprocess.run(
                ["bash", psh, "start", peer_dir],
                check=True,
                env={**os.environ, "PEER_SYNC_PORT": "0", "PEER_PG_PORT": "0"},
                stdout=subprocess.DEVNULL,
            )
        token_url = env_file(os.path.join(peer_dir, "peer.env"))["PEER_TOKEN_SERVER_URL"]

        def user():
            out = subprocess.run(
                ["bash", psh, "token", peer_dir, os.urandom(16).hex(), os.urandom(16).hex(), "--json"],
                check=True,
                capture_output=True,
                text=True,
            )
            return out.stdout.strip()

        ways = [("direct", None)]
        after = Syncto(binary, token_url, tmp, "after")
        servers.append(after)
        ways.append(("Syncto", after))
        if a.before:
            before = Syncto(a.before, token_url, tmp, "before")
            servers.append(before)
            ways.append(("before", before))
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        print(
            f"# {time.strftime('%Y-%m-%d')} {os.cpu_count()} cores, syncstorage-rs + PostgreSQL (peer.sh), "
            f"Syncto {rev.stdout.strip()} ({binary}, batches of {after.batch})"
            + (f", before: {a.before} (batches of {before.batch})" if a.before else "")
            + f", {a.runs} runs"
        )
        results = {}  # (way, n, what) -> [ms]
        for run in range(1, a.runs + 1):
            for n in sizes:
                line = []
                for way, server in ways:
                    if server is None:
                        got = node("direct", token_url, user(), COLL, str(n))
                    else:
                        got = node("kinto", server.url, user(), COLL, str(n))
                    for what in WHAT:
                        results.setdefault((way, n, what), []).append(got[what]["ms"])
                    line.append(f"{way} " + " / ".join(ms(got[w]["ms"]) for w in WHAT))
                print(f"# run {run}, {n} records (creates / updates / deletes): " + "; ".join(line), flush=True)

        print()
        head = "| Push | " + " | ".join(
            {"direct": "Sync server's bound (paced calls of 100)", "Syncto": "through Syncto (Kinto.js sync())", "before": "before (Kinto.js sync())"}[w]
            for w, _ in ways
        ) + " | Syncto ÷ bound |"
        print(head)
        print("|" + "---|" * (len(ways) + 2))
        for n in sizes:
            for what in WHAT:
                cells = [span(results[(w, n, what)], ms) for w, _ in ways]
                ratio = [s / d for s, d in zip(results[("Syncto", n, what)], results[("direct", n, what)])]
                print(f"| {n:,} {what} | " + " | ".join(cells) + f" | {span(ratio, lambda r: f'{r:.1f}×')} |")
        print()
        for (way, server) in ways:
            if server is not None:
                print(f"# peak RSS of Syncto ({way}): {server.peak_rss_kb() / 1024:.1f} MB")
    finally:
        for s in servers:
            s.stop()
        if started:
            subprocess.run(["bash", psh, "stop", peer_dir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
