"""What the bench scripts share, so that each says only what it measures.

Building the release binary and the Node clients, the real Sync server (peer.sh),
the fake upstream (examples/fake_upstream), starting a Syncto on a free port of
127.0.0.1 and waiting until it answers, a process's CPU ticks, memory and threads
from /proc, and the min–max spans of the tables. Standard library only.

A script imports it from its own directory, so `python3 benches/x.py` works from
anywhere:

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import common  # noqa: E402
"""

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time

# The checkout the scripts belong to.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Clock ticks a second (the unit of /proc/PID/stat's CPU times).
HZ = os.sysconf("SC_CLK_TCK")

# ---------------------------------------------------------------- building


def default_binary():
    return os.path.join(ROOT, "target/release/syncto")


def default_fake():
    return os.path.join(ROOT, "target/release/examples/fake_upstream")


def add_binary_args(parser, fake=True):
    """--bin (and --fake): the release builds of this checkout unless named."""
    parser.add_argument("--bin", default=default_binary())
    if fake:
        parser.add_argument("--fake", default=default_fake())


def release_binary(path=None):
    """`path`, else this checkout's release build (built first: `cargo build --release`)."""
    if path:
        return path
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "syncto"], cwd=ROOT, check=True)
    return os.path.join(ROOT, "target", "release", "syncto")


def npm_ci():
    """The client packages of tests/clients (Kinto.js, kinto-http), installed when missing."""
    clients = os.path.join(ROOT, "tests", "clients")
    if not os.path.isdir(os.path.join(clients, "node_modules", "kinto")):
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"],
            cwd=clients,
            check=True,
            env={**os.environ, "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD": "1"},
        )


def git_rev():
    """The checkout's short commit id ("" outside git)."""
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return out.stdout.strip()


def node(mjs, *args, timeout):
    """Runs one command of a Node half (e2e.mjs, push.mjs): the JSON of its last line."""
    out = subprocess.run(["node", mjs, *args], capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        sys.exit(f"node {args[0]} failed: {out.stderr.strip()[-500:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- upstreams


def peer_sh():
    """peer.sh: PEER_SH, else ../shared/syncstorage/peer.sh beside the checkout, else
    /work/shared/syncstorage/peer.sh."""
    for p in (
        os.environ.get("PEER_SH"),
        os.path.join(ROOT, "..", "shared", "syncstorage", "peer.sh"),
        "/work/shared/syncstorage/peer.sh",
    ):
        if p and os.path.isfile(p):
            return p
    sys.exit("peer.sh not found (set PEER_SH)")


def env_file(path):
    """A KEY=value file (peer.env) as a dict."""
    out = {}
    with open(path) as f:
        for line in f:
            k, _, v = line.strip().partition("=")
            out[k] = v
    return out


class Peer:
    """The real Token Server + Sync node (syncstorage-rs and PostgreSQL, peer.sh): the one
    already started in `peer_dir`, else one started in `tmp`/peer that stop() stops."""

    def __init__(self, peer_dir, tmp):
        self.sh = peer_sh()
        self.started = peer_dir is None
        self.dir = peer_dir or os.path.join(tmp, "peer")
        try:
            if self.started:
                os.chmod(tmp, 0o711)  # PostgreSQL runs as its own user and must reach its dir
                subprocess.run(
                    ["bash", self.sh, "start", self.dir],
                    check=True,
                    env={**os.environ, "PEER_SYNC_PORT": "0", "PEER_PG_PORT": "0"},
                    stdout=subprocess.DEVNULL,
                )
            self.env = env_file(os.path.join(self.dir, "peer.env"))
        except BaseException:
            self.stop()
            raise
        self.token_url = self.env["PEER_TOKEN_SERVER_URL"]

    def token(self, uid=None, state=None):
        """A new OAuth token (`peer.sh token … --json`: its Authorization and X-KeyID), by
        default of a user the Token Server has never seen."""
        out = subprocess.run(
            ["bash", self.sh, "token", self.dir, uid or os.urandom(16).hex(), state or os.urandom(16).hex(), "--json"],
            check=True,
            capture_output=True,
            text=True,
        )
        return out.stdout.strip()

    def stop(self):
        if self.started and os.path.isdir(self.dir):
            subprocess.run(["bash", self.sh, "stop", self.dir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class Fake:
    """examples/fake_upstream (fake Token Server + Sync node, any token works); `urls`
    holds the TOKEN_URL, SYNC_URL and STATS_URL it prints. It runs until stop() closes its
    stdin (or its --seconds end)."""

    def __init__(self, path, *args):
        self.proc = subprocess.Popen([path, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.urls = {}
        while "SYNC_URL" not in self.urls:
            line = self.proc.stdout.readline()
            if not line:
                raise SystemExit("fake_upstream did not start")
            k, _, v = line.strip().partition("=")
            self.urls[k] = v
        self.token_url = self.urls["TOKEN_URL"]

    def stop(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


# ---------------------------------------------------------------- Syncto


def free_port():
    """A port of 127.0.0.1 free a moment ago."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def write_ini(path, **settings):
    """A syncto.ini of `[app:main]` and the settings in their order; returns `path`."""
    with open(path, "w") as f:
        f.write("[app:main]\n" + "".join(f"{k} = {v}\n" for k, v in settings.items()))
    return path


def env_with(**settings):
    """This environment with SYNCTO_* settings added and no SYNCTO_INI (a configuration file
    the bench did not choose)."""
    env = dict(os.environ, **settings)
    env.pop("SYNCTO_INI", None)
    return env


def env_without_syncto():
    """This environment without any SYNCTO_* variable: they would override the ini file."""
    return {k: v for k, v in os.environ.items() if not k.startswith("SYNCTO_")}


def answers(port, path="/v1/__lbheartbeat__", timeout=1):
    """True if GET `path` is answered 200."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        r.read()
        return r.status == 200
    finally:
        c.close()


def wait_until(probe, what, seconds=20, pause=0.1, proc=None):
    """probe() until it returns a true value (a refused or cut connection is a no), which is
    returned; exits with `what` after `seconds`, or as soon as `proc` has ended."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            got = probe()
            if got:
                return got
        except (OSError, http.client.HTTPException):
            pass
        if time.monotonic() > deadline or (proc is not None and proc.poll() is not None):
            raise SystemExit(what)
        time.sleep(pause)


class Syncto:
    """A Syncto on a free port of 127.0.0.1: `[*prefix, binary, --config config, --bind …]`,
    its stderr (and stdout, unless given) into `log`, on `port` if given (else a free one).
    The caller waits for it (wait()) and owns the log."""

    def __init__(self, binary, *, config=None, env=None, log=subprocess.DEVNULL, stdout=None, prefix=(),
                 preexec_fn=None, port=None):
        self.binary = binary
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.proc = subprocess.Popen(
            [*prefix, binary, *(["--config", config] if config else []), "--bind", f"127.0.0.1:{self.port}"],
            env=env,
            stdout=log if stdout is None else stdout,
            stderr=log,
            preexec_fn=preexec_fn,
        )

    def wait(self, probe=None, seconds=20, pause=0.1, what="syncto did not start"):
        """Until probe() (by default: /v1/__lbheartbeat__ answers 200) says yes; its answer."""
        return wait_until(probe or (lambda: answers(self.port)), what, seconds, pause, self.proc)

    def rss_kb(self):
        return status_kb(self.proc.pid, "VmRSS")

    def peak_rss_kb(self):
        """VmHWM: the most resident memory the process had."""
        return status_kb(self.proc.pid, "VmHWM")

    def threads(self):
        return threads(self.proc.pid)

    def terminate(self, timeout):
        """SIGTERM, then SIGKILL if it has not ended after `timeout` seconds."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def kill(self):
        self.proc.kill()
        self.proc.wait()


def read_to_end(sock):
    """What `sock` receives until the server closes it (or the connection fails), and
    whether its timeout ended the wait first."""
    out = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return out, True
        except OSError:
            return out, False
        if not chunk:
            return out, False
        out += chunk


def glibc_tunables():
    """GLIBC_TUNABLES as etc/syncto.service sets it."""
    with open(os.path.join(ROOT, "etc/syncto.service")) as f:
        return next(l.split("GLIBC_TUNABLES=", 1)[1].strip() for l in f.read().splitlines() if "GLIBC_TUNABLES=" in l)


# ---------------------------------------------------------------- /proc


def ticks(pid):
    """utime + stime of a process, in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def children(pid):
    """The processes whose parent is `pid`."""
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


def cpu_ms(before, after):
    """The CPU time, in ms, between two {pid: ticks} samples (a pid new in `after` counts
    from 0)."""
    return sum(after[p] - before.get(p, 0) for p in after) * 1000 / HZ


def status_kb(pid, field):
    """A `kB` line of /proc/PID/status (VmRSS, VmHWM), or None if it has none (an ended
    process); OSError if there is no such process."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


def threads(pid):
    return len(os.listdir(f"/proc/{pid}/task"))


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


# ---------------------------------------------------------------- tables


def span(values, fmt="{:.0f}"):
    """min–max of `values` as `fmt` (a format string or a function) writes them: one figure
    when both are written alike, and a shared unit once ("45–70 ms", not "45 ms–70 ms")."""
    show = fmt.format if isinstance(fmt, str) else fmt
    lo, hi = show(min(values)), show(max(values))
    if lo == hi:
        return lo
    lo_n, _, lo_unit = lo.partition(" ")
    _, _, hi_unit = hi.partition(" ")
    return f"{lo_n}–{hi}" if lo_unit and lo_unit == hi_unit else f"{lo}–{hi}"
