//! Test harness: the real server in-process on 127.0.0.1:0 against the
//! fakes, and a small HTTP client.

#![allow(dead_code)]

pub mod child;

use fakes::Fake;
use serde_json::Value;
use std::time::Duration;
use syncto::config::Config;
use syncto::listen::Listen;
use ureq::http;

/// A key id (OAuth) that can serve as bucket id.
pub const KID: &str = "1234-Yw3NKWbEM2aRElRIu7JbTw";
/// A BrowserID client state (32 chars).
pub const CS: &str = "630dcd2966c4336691125448bbb25b4f";
/// Records URL of the `tabs` collection for [`KID`].
pub fn records(coll: &str) -> String {
    format!("/v1/buckets/{KID}/collections/{coll}/records")
}
pub fn record(coll: &str, id: &str) -> String {
    format!("/v1/buckets/{KID}/collections/{coll}/records/{id}")
}
pub const BEARER: (&str, &str) = ("Authorization", "Bearer good-token");
pub const JSON: (&str, &str) = ("Content-Type", "application/json");

/// A server with writes (put and delete) enabled on `tabs`.
pub fn writable() -> Syncto {
    Syncto::with(|c| {
        let on = syncto::config::WriteSwitch {
            put: true,
            delete: true,
        };
        c.write_switches.insert("tabs".into(), on);
    })
}

/// As [`writable`], with a batch's writes made one by one (`batch_collapse = false`).
pub fn writable_one_by_one() -> Syncto {
    Syncto::with(|c| {
        let on = syncto::config::WriteSwitch {
            put: true,
            delete: true,
        };
        c.write_switches.insert("tabs".into(), on);
        c.batch_collapse = false;
    })
}

/// The server under test plus its fakes; stops on drop.
pub struct Syncto {
    running: Option<syncto::server::Running>,
    app: std::sync::Arc<syncto::app::App>,
    pub base: String,
    pub fake: Fake,
    agent: ureq::Agent,
}

pub fn test_config(fake: &Fake) -> Config {
    Config {
        listen: Listen::Tcp("127.0.0.1:0".into()),
        token_server_url: fake.token_url.clone(),
        workers: 4,
        upstream_timeout: Duration::from_secs(5),
        upstream_connect_timeout: Duration::from_secs(2),
        ..Config::default()
    }
}

impl Syncto {
    pub fn start() -> Syncto {
        Syncto::with(|_| {})
    }

    pub fn with(f: impl FnOnce(&mut Config)) -> Syncto {
        let fake = Fake::start();
        let mut config = test_config(&fake);
        f(&mut config);
        Syncto::on(fake, config)
    }

    pub fn on(fake: Fake, config: Config) -> Syncto {
        if std::env::var_os("SYNCTO_TEST_LOG").is_some() {
            syncto::logging::init(syncto::logging::LogFormat::Text, log::LevelFilter::Debug);
        }
        let (running, app) = syncto::start(config).expect("server starts");
        let base = format!("http://127.0.0.1:{}", running.port().unwrap());
        Syncto {
            running: Some(running),
            app,
            base,
            fake,
            agent: client(),
        }
    }

    /// The running server.
    pub fn running(&self) -> &syncto::server::Running {
        self.running.as_ref().unwrap()
    }

    pub fn app(&self) -> &syncto::app::App {
        &self.app
    }

    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        self.req("GET", path, headers, None)
    }

    /// GET with the default OAuth Authorization.
    pub fn auth_get(&self, path: &str) -> Resp {
        self.req("GET", path, &[BEARER], None)
    }

    pub fn req(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Resp {
        request(
            &self.agent,
            method,
            &format!("{}{path}", self.base),
            headers,
            body,
        )
    }

    pub fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown();
        }
    }
}

impl Drop for Syncto {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown();
        }
    }
}

pub fn client() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .new_agent()
}

pub fn request(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Resp {
    let mut b = http::Request::builder().method(method).uri(url);
    for (n, v) in headers {
        b = b.header(*n, *v);
    }
    let resp = match body {
        Some(body) => agent.run(b.body(body.as_bytes().to_vec()).unwrap()),
        None => agent.run(b.body(()).unwrap()),
    };
    let mut resp = resp.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let headers = resp
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let status = resp.status().as_u16();
    let body = resp
        .body_mut()
        .with_config()
        .limit(64 * 1024 * 1024)
        .read_to_string()
        .unwrap_or_default();
    Resp {
        status,
        headers,
        body,
    }
}

#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    /// Assert the 503 of an upstream that can't be reached.
    #[track_caller]
    pub fn assert_unreachable(&self) {
        let j = self.assert_error(503, 201);
        assert_eq!(
            j["message"],
            "Unable to reach the service. Check your internet connection or firewall configuration."
        );
        assert_eq!(self.header("Retry-After"), Some("30"));
    }

    /// Assert a Kinto error document.
    #[track_caller]
    pub fn assert_error(&self, status: u16, errno: u64) -> Value {
        assert_eq!(self.status, status, "body: {}", self.body);
        let j = self.json();
        assert_eq!(j["code"], status, "{j}");
        assert_eq!(j["errno"], errno, "{j}");
        assert!(j["error"].is_string(), "{j}");
        assert!(j["message"].is_string(), "{j}");
        assert!(
            self.header("content-type")
                .unwrap_or("")
                .starts_with("application/json"),
            "{:?}",
            self.headers
        );
        j
    }
}

/// Send raw bytes, return the raw answer (for malformed requests).
pub fn raw(base: &str, bytes: &[u8]) -> String {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if let Some(i) = find(&out, b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&out[..i]).to_ascii_lowercase();
                    if let Some(len) = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse::<usize>().ok())
                    {
                        if out.len() >= i + 4 + len {
                            break;
                        }
                    }
                }
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
