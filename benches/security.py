#!/usr/bin/env python3
"""The attacks of the security review, measured: peak RSS, time, upstream calls.

    benches/security.py [SYNCTO_BINARY]      # default target/release/syncto

Not part of `cargo test` (figures, not assertions). Python 3 standard library
only. Everything binds 127.0.0.1 and stops by itself: each scenario starts a
fresh syncto (so its peak RSS, VmHWM, is that scenario's) against a fake Token
Server + Sync node in this process, and kills it when done.

Scenarios:
  pages     one batch of 10 GETs of a 50 MB page (an account holder's attack), the page
            sent with a Content-Length, then chunked (no length known in advance)
  near      one batch of 10 GETs of a 15 MB page (just under the 16 MiB read limit)
  defaults  one unauthenticated batch: 25 sub-requests, `defaults.body` a 2 MiB array;
            then 25 PUTs sharing a `defaults.body` object of 1.9 MB
  health    two batches of 25 x /__heartbeat__ at once with the Token Server's
            heartbeat black-holed (workers = 2, heartbeat timeout 1 s), and
            /__lbheartbeat__ sent meanwhile
  tokens    one batch of 25 sub-requests with 25 different made-up tokens,
            then 25 with the same refused token
"""

import http.client
import http.server
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

KID = "1234-Yw3NKWbEM2aRElRIu7JbTw"
PAGE_MB = 50


class Upstream(http.server.ThreadingHTTPServer):
    """Token Server + Sync node in one: no Hawk check, canned answers."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.token_calls = 0
        self.heartbeat_hangs = False
        self.pages = {
            name: json.dumps([{"id": "big", "modified": 1444385059.19, "payload": "x" * size}]).encode()
            for name, size in (("tabs", PAGE_MB * 1000 * 1000), ("near", 15 * 1000 * 1000))
        }
        self.lock = threading.Lock()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body, headers=()):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for n, v in headers:
            self.send_header(n, v)
        self.end_headers()
        try:
            self.wfile.write(body)
        except OSError:
            pass  # the client stopped reading (an over-limit body)

    def chunked(self, body):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("X-Last-Modified", "1444385059.19")
        self.end_headers()
        try:
            for i in range(0, len(body), 1 << 20):
                part = body[i:i + (1 << 20)]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass
        self.close_connection = True

    def do_GET(self):
        up = self.server
        path = self.path.split("?")[0]
        if path == "/__heartbeat__":
            if up.heartbeat_hangs:
                time.sleep(30)
                return
            return self.answer(200, b"{}")
        if path == "/1.0/sync/1.5":
            with up.lock:
                up.token_calls += 1
            if "refused" in self.headers.get("Authorization", ""):
                return self.answer(401, b'{"status": "invalid-credentials"}')
            creds = {"id": "tok", "key": "k" * 32, "api_endpoint": f"{up.url}/1.5/1", "duration": 300}
            return self.answer(200, json.dumps(creds).encode())
        if path.startswith("/1.5/1/storage/chunked"):
            return self.chunked(up.pages["tabs"])
        if path.startswith("/1.5/1/storage/"):
            page = up.pages.get(path.split("/")[4], up.pages["tabs"])
            return self.answer(200, page, [("X-Last-Modified", "1444385059.19"), ("X-Weave-Records", "1")])
        return self.answer(404, b"0")

    def do_PUT(self):
        length = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(length)
        self.answer(200, b"1444385059.19", [("X-Last-Modified", "1444385059.19")])


class Syncto:
    def __init__(self, binary, upstream, workers=4, extra=""):
        self.dir = tempfile.mkdtemp(prefix="syncto-bench-")
        self.port = common.free_port()
        ini = os.path.join(self.dir, "syncto.ini")
        with open(ini, "w") as f:
            f.write(
                f"[app:main]\ntoken_server_url = {upstream.url}/\nworkers = {workers}\n"
                f"log_level = error\nrecord_tabs_put_enabled = true\n{extra}\n"
                f"[server:main]\nhost = 127.0.0.1\nport = {self.port}\n"
            )
        self.proc = subprocess.Popen([binary, "--config", ini], stderr=subprocess.DEVNULL)
        common.wait_until(lambda: socket.create_connection(("127.0.0.1", self.port), timeout=1).close() or True,
                          "syncto did not start", seconds=10, pause=0.05, proc=self.proc)

    def status(self, field):
        return (common.status_kb(self.proc.pid, field) or 0) / 1024  # MB

    def request(self, method, path, body=None, headers=None, timeout=120):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        h = {"Content-Type": "application/json"} if body is not None else {}
        h.update(headers or {})
        started = time.time()
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, data, time.time() - started

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def batch_statuses(data):
    try:
        return [x["status"] for x in json.loads(data)["responses"]]
    except (ValueError, KeyError, TypeError):
        return data[:120]


def pages(binary, up):
    for coll, what in (("tabs", f"{PAGE_MB} MB page"), ("chunked", f"{PAGE_MB} MB chunked page"),
                       ("near", "15 MB page")):
        s = Syncto(binary, up)
        idle = s.status("VmRSS")
        reqs = [{"path": f"/buckets/{KID}/collections/{coll}/records"}] * 10
        status, data, took = s.request("POST", "/v1/batch", json.dumps({"requests": reqs}),
                                       {"Authorization": "Bearer ok"})
        peak = s.status("VmHWM")
        s.stop()
        subs = batch_statuses(data)
        print(f"pages:    10 x {what} in one batch -> {status} {subs}; answer {len(data) / 1e6:.1f} MB; "
              f"{took:.2f} s; RSS idle {idle:.1f} MB, peak {peak:.1f} MB")


def defaults(binary, up):
    s = Syncto(binary, up)
    idle = s.status("VmRSS")
    array = "[" + ",".join(["0"] * 1_045_000) + "]"  # the batch stays under 2 MiB
    reqs = [{"method": "PUT", "path": f"/buckets/{KID}/collections/tabs/records/r{i}"} for i in range(25)]
    body = '{"defaults": {"body": ' + array + '}, "requests": ' + json.dumps(reqs) + "}"
    status, data, took = s.request("POST", "/v1/batch", body)
    peak = s.status("VmHWM")
    s.stop()
    subs = batch_statuses(data) if status == 200 else json.loads(data).get("message")
    print(f"defaults: {len(body) / 1048576:.2f} MiB batch, defaults.body an array, no auth -> {status} "
          f"{str(subs)[:90]}; {took:.3f} s; RSS idle {idle:.1f} MB, peak {peak:.1f} MB")
    s = Syncto(binary, up)
    shared = {"data": {"payload": "p" * 1_900_000}}
    body = json.dumps({"defaults": {"body": shared}, "requests": reqs})
    status, data, took = s.request("POST", "/v1/batch", body, {"Authorization": "Bearer ok"})
    peak = s.status("VmHWM")
    s.stop()
    subs = batch_statuses(data)
    print(f"defaults: 25 PUTs sharing a 1.9 MB defaults.body object -> {status} "
          f"{sum(1 for x in subs if x == 200)} x 200, {sum(1 for x in subs if x != 200)} not run; "
          f"{took:.3f} s; RSS peak {peak:.1f} MB")


def health(binary, up):
    up.heartbeat_hangs = True
    s = Syncto(binary, up, workers=2, extra="token_server_heartbeat_timeout_seconds = 1")
    body = json.dumps({"requests": [{"path": "/__heartbeat__"}] * 25})
    results = []

    def one():
        results.append(s.request("POST", "/v1/batch", body, timeout=120))

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    lb_status, _, lb_took = s.request("GET", "/v1/__lbheartbeat__", timeout=120)
    for t in threads:
        t.join(150)
    s.stop()
    up.heartbeat_hangs = False
    shown = ", ".join(f"{st} in {took:.2f} s" for st, _, took in results)
    print(f"health:   2 batches of 25 x /__heartbeat__ (heartbeat black-holed, 2 workers) -> {shown}; "
          f"/__lbheartbeat__ {lb_status} after {lb_took:.2f} s")


def tokens(binary, up):
    s = Syncto(binary, up)
    path = f"/buckets/{KID}/collections/tabs/records"
    reqs = [{"path": path, "headers": {"Authorization": f"Bearer made-up-{i}"}} for i in range(25)]
    before = up.token_calls
    status, data, took = s.request("POST", "/v1/batch", json.dumps({"requests": reqs}))
    made_up = up.token_calls - before
    reqs = [{"path": path}] * 25
    before = up.token_calls
    status2, data2, took2 = s.request("POST", "/v1/batch", json.dumps({"requests": reqs}), {"Authorization": "Bearer refused"})
    refused = up.token_calls - before
    for _ in range(10):
        s.request("GET", "/v1" + path, headers={"Authorization": "Bearer refused"})
    again = up.token_calls - before - refused
    s.stop()
    print(f"tokens:   25 made-up tokens in one batch -> {made_up} Token Server calls ({took:.2f} s); "
          f"25 x one refused token -> {refused} call(s) ({took2:.2f} s); 10 more requests with it -> {again} call(s)")


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/syncto"
    up = Upstream()
    threading.Thread(target=up.serve_forever, daemon=True).start()
    print(f"binary: {binary}")
    for scenario in (pages, defaults, health, tokens):
        scenario(binary, up)
    up.shutdown()


if __name__ == "__main__":
    main()
