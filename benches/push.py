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
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from common import span  # noqa: E402

MJS = os.path.join(common.ROOT, "benches", "push.mjs")
COLL = "history"
WHAT = ("creates", "updates", "deletes")


class Syncto(common.Syncto):
    """A Syncto with writes on `history`; stop() ends it."""

    def __init__(self, binary, token_url, tmp, name):
        ini = common.write_ini(
            os.path.join(tmp, f"{name}.ini"),
            token_server_url=token_url,
            **{f"record_{COLL}_put_enabled": "true", f"record_{COLL}_delete_enabled": "true"},
        )
        self.log = open(os.path.join(tmp, f"{name}.log"), "ab")
        super().__init__(binary, config=ini, env=common.env_without_syncto(), log=self.log)
        hello = self.wait(lambda: json.loads(urllib.request.urlopen(self.url + "/", timeout=1).read()),
                          pause=0.02, what=f"{binary} did not start")
        self.batch = hello["settings"]["batch_max_requests"]

    def peak_rss_kb(self):
        return super().peak_rss_kb() or 0

    def stop(self):
        self.terminate(20)
        self.log.close()


def node(*args):
    return common.node(MJS, *args, timeout=600)


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

    binary = common.release_binary(a.bin)
    common.npm_ci()

    tmp = tempfile.mkdtemp(prefix="syncto-push-")
    upstream = None
    servers = []
    try:
        upstream = common.Peer(a.peer, tmp)
        token_url, user = upstream.token_url, upstream.token

        ways = [("direct", None)]
        after = Syncto(binary, token_url, tmp, "after")
        servers.append(after)
        ways.append(("Syncto", after))
        if a.before:
            before = Syncto(a.before, token_url, tmp, "before")
            servers.append(before)
            ways.append(("before", before))
        print(
            f"# {time.strftime('%Y-%m-%d')} {os.cpu_count()} cores, syncstorage-rs + PostgreSQL (peer.sh), "
            f"Syncto {common.git_rev()} ({binary}, batches of {after.batch})"
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
        if upstream:
            upstream.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
