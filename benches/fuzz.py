#!/usr/bin/env python3
"""Raw-socket request fuzzer against the Syncto listener (not part of `cargo test`).

    benches/fuzz.py [--bin target/release/syncto] [--fake target/release/examples/fake_upstream]
                    [--minutes 10] [--seed 1] [--threads 12] [--out DIR]

Starts the fake Token Server + Sync node and Syncto (short listener limits so that a
truncated request resolves in about a second, a 64 KiB body limit, writes enabled on
`tabs`), then, for the given time, sends mutated HTTP requests on fresh connections:
valid seeds (hello, heartbeats, records with a token and a query, PUT with a
Content-Length or a chunked body, DELETE, HEAD, batch, CORS preflight, pipelined pairs)
with random byte flips, inserted CR/LF/NUL/DEL/high bytes, deleted or repeated ranges,
injected framing headers (conflicting or absurd Content-Length, Transfer-Encoding
variants, Connection: upgrade, Expect), other versions and methods, oversized lines,
truncation and garbage; sent at once or in small pieces, with or without closing the
sending side.

A case fails on:
- hang: the connection is neither answered and closed nor closed within 10 s of the
  last byte sent (every server limit is 1-5 s here);
- non-HTTP answer: bytes that are not a sequence of well-formed HTTP/1.x responses
  (status line, headers without control characters, a body of the announced length);
- non-JSON error: a 4xx/5xx whose body is not a Kinto error document (code = status,
  errno, error, message), or an application/json body that does not parse;
- panic: a `panicked` line in the server log; crash: the process ended;
- not serving: a normal `GET /v1/__lbheartbeat__` (every 100 cases, and at the end) not
  answered 200 within 5 s.

Failing inputs are written to --out (default: a temporary directory, printed). The
summary is one JSON line: cases run, failures by kind, threads/descriptors/RSS of the
server at the start and at the end.
"""

import argparse
import json
import os
import random
import socket
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from attack import Fake, Syncto, get, raise_own_nofile  # noqa: E402

KID = "1234-Yw3NKWbEM2aRElRIu7JbTw"
REC = f"/v1/buckets/{KID}/collections/tabs/records"
AUTH = b"Authorization: Bearer fuzz-token\r\n"

SEEDS = [
    b"GET /v1/ HTTP/1.1\r\nHost: localhost\r\n\r\n",
    b"GET /v1/__lbheartbeat__ HTTP/1.1\r\nHost: x\r\nUser-Agent: fuzz\r\n\r\n",
    b"GET /v1/__heartbeat__ HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET " + REC.encode() + b"?_since=1&_limit=2&_sort=-last_modified HTTP/1.1\r\nHost: x\r\n"
    + AUTH + b"\r\n",
    b"HEAD " + REC.encode() + b" HTTP/1.1\r\nHost: x\r\n" + AUTH + b"\r\n",
    b"PUT " + REC.encode() + b"/rec1 HTTP/1.1\r\nHost: x\r\n" + AUTH
    + b"Content-Type: application/json\r\nContent-Length: 31\r\n\r\n"
    + b'{"data":{"payload":"abc","a":1}}'[:31],
    b"PUT " + REC.encode() + b"/rec2 HTTP/1.1\r\nHost: x\r\n" + AUTH
    + b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    + b"a\r\n{\"data\":{\"\r\n10\r\npayload\":\"xyz\"}}\r\n0\r\n\r\n",
    b"DELETE " + REC.encode() + b"/rec1 HTTP/1.1\r\nHost: x\r\n" + AUTH
    + b"If-Match: \"1\"\r\n\r\n",
    b"POST /v1/batch HTTP/1.1\r\nHost: x\r\n" + AUTH
    + b"Content-Type: application/json\r\nContent-Length: 79\r\n\r\n"
    + b'{"defaults":{"method":"GET"},"requests":[{"path":"/__lbheartbeat__"},{"path":"/"}]}'[:79],
    b"OPTIONS " + REC.encode() + b" HTTP/1.1\r\nHost: x\r\nOrigin: https://a.example\r\n"
    b"Access-Control-Request-Method: GET\r\nAccess-Control-Request-Headers: authorization\r\n\r\n",
    b"GET /v1/__version__ HTTP/1.1\r\nHost: x\r\n\r\nGET /buckets/a HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /v1/buckets/syncto/collections/tabs HTTP/1.1\r\nHost: x\r\n" + AUTH
    + b"X-KeyID: " + KID.encode() + b"\r\n\r\n",
]

INTERESTING = [b"\r", b"\n", b"\0", b"\r\n", b" ", b"\t", b":", b"\x7f", b"\xff", b"\x80",
               b"%", b"%0d%0a", b"0", b"-1", b"\r\n\r\n", b"\x1b", b",", b";", b"\"", b"/",
               b"?", b"#", b"HTTP/1.1", b"\r\n ", b"chunked"]

HEADERS = [
    lambda r: b"Content-Length: %d" % r.choice([0, 1, 5, 31, 1025, 65537, 10**12, 2**64]),
    lambda r: b"Content-Length: " + r.choice([b"abc", b"-1", b"+5", b"5, 6", b"5,5", b"",
                                              b"99999999999999999999999999", b" 3 "]),
    lambda r: b"Transfer-Encoding: " + r.choice([b"chunked", b"gzip", b"gzip, chunked",
                                                 b"chunked, chunked", b"identity", b"CHUNKED",
                                                 b" chunked", b"xchunked"]),
    lambda r: b"Connection: " + r.choice([b"close", b"upgrade", b"keep-alive", b"Upgrade, close",
                                          b"TE"]),
    lambda r: b"Upgrade: " + r.choice([b"websocket", b"h2c", b"HTTP/2.0"]),
    lambda r: b"Expect: " + r.choice([b"100-continue", b"200-ok", b""]),
    lambda r: b"Host: " + r.choice([b"", b"a b", b"evil.example/x", b"a\tb", b"[::1]:80"]),
    lambda r: b"TE: " + r.choice([b"chunked", b"trailers", b"gzip;q=0.5, chunked;q=1.0"]),
    lambda r: b"X-Long: " + b"a" * r.choice([100, 16 * 1024, 20000]),
    lambda r: b"Authorization: " + r.choice([b"Bearer", b"Bearer \xff", b"BrowserID x",
                                             b"Digest a", b"Bearer " + b"t" * 9000]),
    lambda r: b"X-KeyID: " + r.choice([b"", b"123", KID.encode(), b"1-" + b"A" * 22]),
    lambda r: b"If-Match: " + r.choice([b"*", b"\"abc\"", b"\"1.5\"", b"1"]),
    lambda r: b"If-None-Match: " + r.choice([b"*", b"\"*\"", b"\"12\""]),
    lambda r: b"Content-Type: " + r.choice([b"text/plain", b"application/json; charset=x",
                                            b"application/x+json"]),
    lambda r: b"\r\n".join(b"X-M%d: v" % i for i in range(r.choice([50, 99, 120]))),
]

VERSIONS = [b"HTTP/1.0", b"HTTP/1.1", b"HTTP/2.0", b"HTTP/1.9", b"HTTP/1", b"http/1.1",
            b"HTTP/0.9", b"HTTP/1.1 ", b"", b"HTTP/11", b"HTTP/3"]
METHODS = [b"GET", b"get", b"PUT", b"POST", b"DELETE", b"HEAD", b"OPTIONS", b"PATCH",
           b"CONNECT", b"TRACE", b"BREW", b"G\0T", b"GET\t", b"", b"\xffGET", b"PRI"]


def mutate(r, data):
    data = bytearray(data)
    for _ in range(r.randint(1, 4)):
        op = r.randrange(12)
        pos = r.randint(0, len(data))
        if op == 0 and data:
            i = r.randrange(len(data))
            data[i] = r.randrange(256)
        elif op in (1, 2):
            data[pos:pos] = r.choice(INTERESTING)
        elif op == 3 and data:
            end = min(len(data), pos + r.randint(1, 20))
            del data[pos:end]
        elif op == 4 and data:
            end = min(len(data), pos + r.randint(1, 40))
            data[pos:pos] = data[pos:end] * r.randint(1, 4)
        elif op in (5, 6):
            # A header after the request line.
            nl = data.find(b"\r\n")
            at = nl + 2 if nl >= 0 else len(data)
            data[at:at] = r.choice(HEADERS)(r) + b"\r\n"
        elif op == 7:
            first = data.split(b"\r\n", 1)
            parts = first[0].split(b" ")
            if len(parts) == 3:
                parts[2] = r.choice(VERSIONS)
                data = bytearray(b" ".join(parts) + (b"\r\n" + first[1] if len(first) > 1 else b""))
        elif op == 8:
            sp = data.find(b" ")
            if sp > 0:
                data[:sp] = r.choice(METHODS)
        elif op == 9 and data:
            del data[r.randint(0, len(data)):]
        elif op == 10:
            data += r.choice(SEEDS) if r.random() < 0.7 else bytes(
                r.randrange(256) for _ in range(r.randint(1, 64)))
        elif op == 11:
            # Chunked garbage after the head.
            data += r.choice([b"ffffffffffffffffff\r\n", b"5\r\nab", b"0\r\nX: y\r\n\r\n",
                              b"3;ext=\"q\"\r\nabc\r\n0\r\n\r\n", b"-1\r\n", b"\n0\n\n"])
    return bytes(data)


def split_sends(r, data):
    if r.random() < 0.6 or len(data) < 2:
        return [data]
    cuts = sorted(r.sample(range(1, len(data)), min(len(data) - 1, r.randint(1, 6))))
    return [data[a:b] for a, b in zip([0] + cuts, cuts + [len(data)])]


# An answer is in the request's version (HTTP/1.0 or 1.1).
ANSWER = (b"HTTP/1.1 ", b"HTTP/1.0 ")


def check_answers(raw):
    """None if `raw` is a sequence of well-formed HTTP/1.1 answers, else why not."""
    rest = raw
    while rest:
        if not rest.startswith(ANSWER):
            return "non-HTTP answer"
        end = rest.find(b"\r\n\r\n")
        if end < 0:
            return "truncated head"
        head = rest[:end]
        lines = head.split(b"\r\n")
        status_line = lines[0]
        try:
            status = int(status_line[9:12])
        except ValueError:
            return "bad status line"
        headers = {}
        for line in lines[1:]:
            if b":" not in line or any(b < 0x20 and b != 9 or b == 0x7f for b in line):
                return "bad header line"
            n, v = line.split(b":", 1)
            if not n or any(not (chr(c).isalnum() or chr(c) in "!#$%&'*+-.^_`|~") for c in n):
                return "bad header name"
            headers[n.strip().lower()] = v.strip()
        rest = rest[end + 4:]
        if 100 <= status < 200:
            continue
        # A HEAD answer announces a body it doesn't carry, and which of the
        # (mutated, pipelined) requests were HEAD is not known for sure. Every
        # body Syncto writes is JSON, so an answer followed at once by the
        # next answer, or by the end, is taken as bodyless.
        n = int(headers.get(b"content-length", b"0") or b"0")
        chunked = b"transfer-encoding" in headers
        at_boundary = rest == b"" or rest.startswith(ANSWER)
        bodyless = status in (204, 304) or (at_boundary and (chunked or n > 0))
        if bodyless:
            body = b""
        elif chunked:
            body, rest = dechunk(rest)
            if body is None:
                return "bad chunked answer"
        else:
            if len(rest) < n:
                return "short body"
            body, rest = rest[:n], rest[n:]
        ctype = headers.get(b"content-type", b"")
        doc = None
        if body and ctype.startswith(b"application/json"):
            try:
                doc = json.loads(body)
            except ValueError:
                return "invalid JSON body"
        if status >= 400 and not bodyless:
            if not body:
                return "error without a body"
            if not (isinstance(doc, dict) and doc.get("code") == status
                    and isinstance(doc.get("errno"), int)
                    and isinstance(doc.get("error"), str)
                    and isinstance(doc.get("message"), str)):
                return "non-JSON error"
    return None


def dechunk(data):
    out = b""
    while True:
        nl = data.find(b"\r\n")
        if nl < 0:
            return None, b""
        try:
            size = int(data[:nl].split(b";")[0], 16)
        except ValueError:
            return None, b""
        data = data[nl + 2:]
        if size == 0:
            end = data.find(b"\r\n")
            return out, data[end + 2:]
        out += data[:size]
        data = data[size + 2:]


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.cases = 0
        self.failures = {}
        self.examples = []

    def fail(self, kind, data, raw, out_dir):
        with self.lock:
            self.failures[kind] = self.failures.get(kind, 0) + 1
            if self.failures[kind] <= 20:
                name = f"{kind.replace(' ', '_')}-{self.failures[kind]}"
                with open(os.path.join(out_dir, name + ".in"), "wb") as f:
                    f.write(data)
                with open(os.path.join(out_dir, name + ".out"), "wb") as f:
                    f.write(raw)


def run_case(port, r, data):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.settimeout(10)
    try:
        for piece in split_sends(r, data):
            s.sendall(piece)
            if r.random() < 0.3:
                time.sleep(r.random() * 0.05)
        if r.random() < 0.7:
            s.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    raw, hang = common.read_to_end(s)
    s.close()
    return raw, hang


def worker(args, port, seed, stats, stop_at, out_dir, server):
    r = random.Random(seed)
    n = 0
    while time.monotonic() < stop_at and server.proc.poll() is None:
        data = mutate(r, r.choice(SEEDS))
        try:
            raw, hang = run_case(port, r, data)
        except OSError as e:
            stats.fail("connect error", data, str(e).encode(), out_dir)
            time.sleep(0.1)
            continue
        kind = "hang" if hang else check_answers(raw)
        if kind:
            stats.fail(kind, data, raw, out_dir)
        n += 1
        with stats.lock:
            stats.cases += 1
        if n % 100 == 0 and get(port, "/v1/__lbheartbeat__", timeout=5)[1] != 200:
            stats.fail("not serving", b"", b"", out_dir)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    common.add_binary_args(p)
    p.add_argument("--minutes", type=float, default=10)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=12)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    raise_own_nofile()
    out_dir = args.out or tempfile.mkdtemp(prefix="syncto-fuzz-")
    os.makedirs(out_dir, exist_ok=True)
    fake = Fake(args.fake)
    env = {
        "SYNCTO_REQUEST_HEAD_TIMEOUT_SECONDS": "1",
        "SYNCTO_REQUEST_BODY_TIMEOUT_SECONDS": "1",
        "SYNCTO_KEEPALIVE_TIMEOUT_SECONDS": "1",
        "SYNCTO_RESPONSE_TIMEOUT_SECONDS": "5",
        "SYNCTO_MAX_BODY_BYTES": "65536",
        "SYNCTO_RECORD_TABS_PUT_ENABLED": "true",
        "SYNCTO_RECORD_TABS_DELETE_ENABLED": "true",
        "SYNCTO_LOG_LEVEL": "warning",
    }
    server = Syncto(args.bin, fake.urls["TOKEN_URL"], env=env, logdir=out_dir)
    port = server.port
    start_stats = server.stats()
    stats = Stats()
    started = time.monotonic()
    stop_at = started + args.minutes * 60
    threads = [threading.Thread(target=worker,
                                args=(args, port, args.seed * 1000 + i, stats, stop_at, out_dir,
                                      server), daemon=True)
               for i in range(args.threads)]
    for t in threads:
        t.start()
    last = started
    while any(t.is_alive() for t in threads):
        time.sleep(1)
        if time.monotonic() - last >= 60:
            last = time.monotonic()
            print(f"{(last - started) / 60:.0f} min: {stats.cases} cases, failures "
                  f"{stats.failures}", file=sys.stderr, flush=True)
    crashed = server.proc.poll() is not None
    if crashed:
        stats.fail("crash", b"", b"", out_dir)
    else:
        time.sleep(6)  # every connection's limits expire
        if get(port, "/v1/__lbheartbeat__", timeout=5)[1] != 200:
            stats.fail("not serving", b"", b"", out_dir)
    end_stats = server.stats()
    log = server.log_text()
    panics = log.count("panicked")
    if panics:
        stats.failures["panic"] = panics
    server.stop()
    fake.stop()
    print(json.dumps({
        "minutes": round((time.monotonic() - started) / 60, 1), "seed": args.seed,
        "threads": args.threads, "cases": stats.cases,
        "failures": sum(stats.failures.values()), "by_kind": stats.failures,
        "server_start": start_stats, "server_end": end_stats, "out": out_dir,
    }))


if __name__ == "__main__":
    main()
