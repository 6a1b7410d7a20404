//! The real Firefox Sync server (Mozilla's syncstorage-rs: Token Server + Sync 1.5 storage on
//! PostgreSQL, run by `peer.sh`) as the upstream of an in-process Syncto.
//!
//! Opt-in: every real-server test is `#[ignore = "needs the real Sync server: PEER_DIR"]`, so a
//! bare `cargo test` lists them as ignored; `cargo test --test tests real:: -- --ignored` runs
//! them. `PEER_DIR` names the state directory of a running peer (`peer.sh start DIR` writes the
//! same variable into `DIR/peer.env`; `.ci/run` sets it). Its `peer.env` gives the token server
//! URL, and `peer.sh token DIR …` mints the OAuth tokens the token server accepts. `peer.sh` is
//! found through `PEER_SH`, else at `../shared/syncstorage/peer.sh` beside the repository. A test
//! asked for without `PEER_DIR`, or with a missing `peer.env` or `peer.sh`, fails saying so: it
//! never passes without the real server. (The names stay out of `SYNCTO_`, the prefix of the
//! server's own settings, which warns about every variable it does not know.)
//!
//! Every test mints a fresh random user (FxA uid and client state), so tests are independent
//! and run in parallel: the real server's write conflicts are per user and collection. Tests
//! only write to collections that exist from the start (`tabs`, `forms`…): two users creating
//! a never-used collection at once get a 500 from its PostgreSQL backend.

use crate::support::child::{Child, syncto};
use crate::support::{Resp, client, request};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use syncto::config::{Config, WriteSwitch};
use syncto::listen::Listen;

/// The state directory of a running peer: the real-server tests need it.
pub const ENV_DIR: &str = "PEER_DIR";
/// Where `peer.sh` is, when not at `../shared/syncstorage/peer.sh`.
pub const ENV_SCRIPT: &str = "PEER_SH";
/// What the two were called before, in the server's own `SYNCTO_` prefix.
pub const OLD_NAMES: [(&str, &str); 2] = [
    ("SYNCTO_REAL_PEER", ENV_DIR),
    ("SYNCTO_PEER_SH", ENV_SCRIPT),
];

/// Collections the tests may write to (put and delete enabled). All exist on a fresh server.
pub const WRITABLE: &[&str] = &["tabs", "forms", "history", "bookmarks", "prefs"];

/// keys_changed_at that `peer.sh token` puts in the key id unless told otherwise.
pub const DEFAULT_KCA: u64 = 1_767_225_600_000;

pub struct Peer {
    pub dir: PathBuf,
    pub script: PathBuf,
    pub token_url: String,
}

/// The peer. Panics, naming what to set, when `PEER_DIR` is unset: only a test marked
/// `#[ignore]` calls this, so it runs only when asked for, and then it must not pass without
/// the real server.
pub fn peer() -> &'static Peer {
    static PEER: OnceLock<Option<Peer>> = OnceLock::new();
    PEER.get_or_init(find).as_ref().unwrap_or_else(|| {
        let renamed = OLD_NAMES
            .iter()
            .filter(|(old, _)| std::env::var_os(old).is_some())
            .map(|(old, new)| format!(" ({old} is set: it is now called {new})"))
            .collect::<String>();
        panic!(
            "this test needs the real Firefox Sync server: {ENV_DIR} is not set{renamed}. Start \
             one with `PEER_SYNC_PORT=0 PEER_PG_PORT=0 peer.sh start DIR`, then run \
             `{ENV_DIR}=DIR {ENV_SCRIPT}=path/to/peer.sh cargo test --test tests real:: -- \
             --ignored` (.ci/run does)"
        )
    })
}

fn find() -> Option<Peer> {
    let dir = PathBuf::from(std::env::var_os(ENV_DIR).filter(|d| !d.is_empty())?);
    let script = match std::env::var_os(ENV_SCRIPT).filter(|s| !s.is_empty()) {
        Some(s) => PathBuf::from(s),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/syncstorage/peer.sh"),
    };
    assert!(
        script.is_file(),
        "{ENV_DIR} is set but {} does not exist: set {ENV_SCRIPT} to peer.sh",
        script.display()
    );
    let env_file = dir.join("peer.env");
    let text = std::fs::read_to_string(&env_file).unwrap_or_else(|e| {
        panic!(
            "{ENV_DIR}={}: cannot read {} ({e}); start it with: {} start DIR",
            dir.display(),
            env_file.display(),
            script.display()
        )
    });
    let token_url = text
        .lines()
        .find_map(|l| l.strip_prefix("PEER_TOKEN_SERVER_URL="))
        .unwrap_or_else(|| panic!("no PEER_TOKEN_SERVER_URL in {}", env_file.display()))
        .trim()
        .to_owned();
    Some(Peer {
        dir,
        script,
        token_url,
    })
}

/// How a request names the user's key id (both are what real clients do).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// The bucket id is the key id.
    Bucket,
    /// Bucket `syncto` plus an `X-KeyID` header.
    Header,
}

/// A Sync user as a Kinto client presents it: an OAuth token and a key id.
#[derive(Debug, Clone)]
pub struct User {
    pub uid: String,
    /// The client state the key id was made from (hex).
    pub client_state: String,
    pub auth: String,
    pub kid: String,
    pub form: Form,
}

/// `n` random bytes as lowercase hex.
pub fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    getrandom::getrandom(&mut b).expect("randomness");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Peer {
    /// A fresh user (random uid and client state) in the bucket-id form.
    pub fn user(&self) -> User {
        self.token(&random_hex(16), &random_hex(16), &[])
    }

    /// `peer.sh token DIR UID CLIENT_STATE ARGS… --json`.
    pub fn token(&self, uid: &str, client_state: &str, args: &[&str]) -> User {
        let out = Command::new("bash")
            .arg(&self.script)
            .arg("token")
            .arg(&self.dir)
            .args([uid, client_state])
            .args(args)
            .arg("--json")
            .output()
            .expect("run peer.sh token");
        assert!(
            out.status.success(),
            "peer.sh token failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let j: Value = serde_json::from_slice(&out.stdout).expect("peer.sh token --json");
        User {
            uid: uid.to_owned(),
            client_state: client_state.to_owned(),
            auth: j["Authorization"].as_str().unwrap().to_owned(),
            kid: j["X-KeyID"].as_str().unwrap().to_owned(),
            form: Form::Bucket,
        }
    }
}

impl Peer {
    /// One Hawk-signed request straight to the storage node as `user` (`peer.sh sync`), as
    /// another device of that user would make it; `path` is below the user's
    /// `api_endpoint` (`/storage/tabs/x`). Returns the status and the body.
    pub fn sync(&self, user: &User, method: &str, path: &str, json: Option<&str>) -> (u16, String) {
        let out = Command::new("bash")
            .arg(&self.script)
            .arg("sync")
            .arg(&self.dir)
            .args([&user.uid, &user.client_state, method, path])
            .args(json)
            .output()
            .expect("run peer.sh sync");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        // "200 PUT http://…" on the first line, the headers, then the body.
        let status = text
            .split(' ')
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "peer.sh sync: {text} {}",
                    String::from_utf8_lossy(&out.stderr)
                )
            });
        let body = text.lines().last().unwrap_or("").to_owned();
        (status, body)
    }
}

impl User {
    /// The same user and token, naming the key id the other way.
    pub fn in_form(&self, form: Form) -> User {
        User {
            form,
            ..self.clone()
        }
    }

    pub fn bucket(&self) -> &str {
        match self.form {
            Form::Bucket => &self.kid,
            Form::Header => "syncto",
        }
    }

    /// Authorization, plus X-KeyID in the header form.
    pub fn headers(&self) -> Vec<(&str, &str)> {
        let mut h = vec![("Authorization", self.auth.as_str())];
        if self.form == Form::Header {
            h.push(("X-KeyID", self.kid.as_str()));
        }
        h
    }

    pub fn collection(&self, coll: &str) -> String {
        format!("/v1/buckets/{}/collections/{coll}", self.bucket())
    }

    pub fn records(&self, coll: &str) -> String {
        format!("{}/records", self.collection(coll))
    }

    pub fn record(&self, coll: &str, id: &str) -> String {
        format!("{}/records/{id}", self.collection(coll))
    }
}

/// Syncto in-process on 127.0.0.1:0 with the peer as its token server; stops on drop.
pub struct Real {
    running: Option<syncto::server::Running>,
    pub base: String,
    agent: ureq::Agent,
    /// The server's shared state (its test hooks).
    pub app: std::sync::Arc<syncto::app::App>,
}

impl Real {
    /// 8 workers, writes enabled on [`WRITABLE`].
    pub fn start(peer: &Peer) -> Real {
        Real::with(peer, |_| {})
    }

    pub fn with(peer: &Peer, f: impl FnOnce(&mut Config)) -> Real {
        let mut config = Config {
            listen: Listen::Tcp("127.0.0.1:0".into()),
            token_server_url: peer.token_url.clone(),
            workers: 8,
            upstream_timeout: Duration::from_secs(10),
            upstream_connect_timeout: Duration::from_secs(5),
            ..Config::default()
        };
        for c in WRITABLE {
            let on = WriteSwitch {
                put: true,
                delete: true,
            };
            config.write_switches.insert((*c).into(), on);
        }
        f(&mut config);
        let (running, app) = syncto::start(config).expect("server starts");
        let base = format!("http://127.0.0.1:{}", running.port().unwrap());
        Real {
            running: Some(running),
            base,
            agent: client(),
            app,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request without credentials.
    pub fn req(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Resp {
        request(&self.agent, method, &self.url(path), headers, body)
    }

    /// A request as `user` (its Authorization and key id), on this server's keep-alive agent.
    pub fn call(
        &self,
        user: &User,
        method: &str,
        path: &str,
        extra: &[(&str, &str)],
        body: Option<&str>,
    ) -> Resp {
        call_on(&self.agent, &self.base, user, method, path, extra, body)
    }

    pub fn get(&self, user: &User, path: &str) -> Resp {
        self.call(user, "GET", path, &[], None)
    }
}

impl Drop for Real {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown();
        }
    }
}

/// [`Real::call`] on any agent (one per connection in the concurrency tests).
pub fn call_on(
    agent: &ureq::Agent,
    base: &str,
    user: &User,
    method: &str,
    path: &str,
    extra: &[(&str, &str)],
    body: Option<&str>,
) -> Resp {
    let mut headers = user.headers();
    if body.is_some() {
        headers.push(("Content-Type", "application/json"));
    }
    headers.extend_from_slice(extra);
    request(agent, method, &format!("{base}{path}"), &headers, body)
}

/// Wait long enough that the next write lands in a later 10 ms tick of the server's clock than
/// the previous one. For setting up state in tests about something else; the tests of
/// back-to-back writes never wait.
pub fn next_tick() {
    std::thread::sleep(Duration::from_millis(25));
}

/// The `syncto` binary against the peer at debug level, so its whole log can be searched.
pub struct Spawned {
    child: Child,
    pub base: String,
    stderr: BufReader<std::process::ChildStderr>,
}

pub fn spawn_syncto(token_url: &str) -> Spawned {
    spawn_syncto_with(token_url, &[])
}

/// As [`spawn_syncto`], with more settings in `env`.
pub fn spawn_syncto_with(token_url: &str, env: &[(&str, &str)]) -> Spawned {
    let mut child = Child::spawn(
        syncto()
            .args(["--bind", "127.0.0.1:0"])
            .env("SYNCTO_TOKEN_SERVER_URL", token_url)
            .env("SYNCTO_LOG_LEVEL", "debug")
            .env("SYNCTO_UPSTREAM_TIMEOUT_SECONDS", "10")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut line = String::new();
    let port = loop {
        assert!(Instant::now() < deadline, "no 'listening on' line");
        line.clear();
        if stderr.read_line(&mut line).unwrap() == 0 {
            panic!("syncto exited at start");
        }
        if let Some(rest) = line.split("listening on 127.0.0.1:").nth(1) {
            let port = rest.split(|c: char| !c.is_ascii_digit()).next().unwrap();
            break port.parse::<u16>().unwrap();
        }
    };
    Spawned {
        child,
        base: format!("http://127.0.0.1:{port}"),
        stderr,
    }
}

impl Spawned {
    /// SIGTERM, wait for exit 0, return everything it logged.
    pub fn stop(&mut self) -> String {
        let killed = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let mut log = String::new();
        self.stderr.read_to_string(&mut log).unwrap();
        assert_eq!(self.child.wait().unwrap().code(), Some(0), "{log}");
        log
    }
}

/// The OAuth token a user presents (its Authorization value without `Bearer `).
pub fn jwt(u: &User) -> &str {
    u.auth.trim_start_matches("Bearer ")
}
