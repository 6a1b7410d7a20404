//! End of service (`eos`, `eos_message`, `eos_url`).
//!
//! Before the `eos` moment every response carries
//! `Alert: {"code": "soft-eol", "message": …, "url": …}` so that clients can warn their
//! users. From that moment on every request is answered 410, errno 202, with a `hard-eol`
//! Alert, and nothing is forwarded upstream, except the health checks (`__heartbeat__`,
//! `__lbheartbeat__`, `__version__`): a load balancer must keep the node in rotation, or
//! clients would get its 502 instead of the explanation. CORS preflights (`OPTIONS`) are
//! answered as usual too: a browser whose preflight fails reports a network error to the
//! page and never makes the real request, whose 410 and `hard-eol` Alert it must read.
//!
//! `message` is `null` without `eos_message`; `url` falls back to `project_docs`. The Alert
//! value is JSON with every non-ASCII character escaped, so any message fits in a header.

use super::Response;
use super::alert::Alert;
use super::error::Error;
use super::route::{Route, Routed, route};
use crate::config::Config;
use std::time::{SystemTime, UNIX_EPOCH};

/// Runs `serve` unless the service has ended (then answers 410 without running it), and
/// adds the end-of-service Alert to the response when `eos` is set.
pub fn guard<T: Default>(
    config: &Config,
    method: &str,
    path: &str,
    now: SystemTime,
    serve: impl FnOnce() -> (Response, T),
) -> (Response, T) {
    let Some(eos) = &config.eos else {
        return serve();
    };
    let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let ended = now >= eos.at;
    let (mut resp, extra) = if ended && method != "OPTIONS" && !is_health_check(path) {
        let r = Error::ServiceDeprecated
            .parts()
            .into_response(config.retry_after_seconds);
        (r, T::default())
    } else {
        serve()
    };
    let alert = if ended {
        Alert::ServiceEnded(alert(config, "hard-eol"))
    } else {
        Alert::ServiceEnding(alert(config, "soft-eol"))
    };
    super::alert::offer(&mut resp, alert);
    (resp, extra)
}

/// The start-up warning of an `eos` already past: the operator may have meant another year,
/// and every client is about to be turned away.
pub fn passed(config: &Config, now: SystemTime) -> Option<String> {
    let eos = config.eos.as_ref()?;
    let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    (now >= eos.at).then(|| {
        format!(
            "eos = {} is already past: every request but the health checks and CORS \
             preflights is answered 410 Gone (errno 202); unset eos to serve again",
            eos.date
        )
    })
}

/// The health endpoints keep answering after the end of service.
fn is_health_check(path: &str) -> bool {
    matches!(
        route(path),
        Ok(Routed::To(
            Route::Heartbeat | Route::LbHeartbeat | Route::Version
        ))
    )
}

/// `{"code": …, "message": …, "url": …}`, ASCII only.
fn alert(config: &Config, code: &str) -> String {
    let url = config.eos_url.as_deref().unwrap_or(&config.project_docs);
    let json = serde_json::json!({
        "code": code,
        "message": config.eos_message,
        "url": url,
    })
    .to_string();
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Eos;
    use std::time::Duration;

    const EOS: u64 = 1_900_000_000;

    fn config(message: Option<&str>, url: Option<&str>) -> Config {
        Config {
            eos: Some(Eos {
                date: "2030-03-17T17:46:40Z".into(),
                at: EOS,
            }),
            eos_message: message.map(String::from),
            eos_url: url.map(String::from),
            ..Config::default()
        }
    }

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    fn run(config: &Config, path: &str, now: SystemTime) -> (Response, bool) {
        run_method(config, "GET", path, now)
    }

    fn run_method(config: &Config, method: &str, path: &str, now: SystemTime) -> (Response, bool) {
        let mut ran = false;
        let (r, _) = guard(config, method, path, now, || {
            ran = true;
            (Response::new(200), None::<()>)
        });
        (r, ran)
    }

    fn alert_of(r: &Response) -> serde_json::Value {
        let (_, v) = r.headers.iter().find(|(n, _)| *n == "Alert").unwrap();
        serde_json::from_str(v).unwrap()
    }

    #[test]
    fn before_the_date_every_response_carries_a_soft_alert() {
        let c = config(Some("Bye"), Some("https://example.org/eos"));
        for path in [
            "/v1/",
            "/v1/buckets/x/collections/tabs/records",
            "/v1/__heartbeat__",
        ] {
            let (r, ran) = run(&c, path, at(EOS - 1));
            assert!(ran && r.status == 200, "{path}");
            assert_eq!(
                alert_of(&r),
                serde_json::json!({"code": "soft-eol", "message": "Bye", "url": "https://example.org/eos"})
            );
        }
    }

    #[test]
    fn from_the_date_on_requests_are_gone_but_health_checks() {
        let c = config(None, None);
        for path in [
            "/v1/",
            "/v1/batch",
            "/v1/buckets/x/collections/tabs/records",
            "/nope",
        ] {
            let (r, ran) = run(&c, path, at(EOS));
            assert!(!ran, "{path} must not be served");
            assert_eq!((r.status, r.errno), (410, Some(202)));
            let doc: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(
                doc["message"],
                "The service you are trying to connect no longer exists at this location."
            );
            assert_eq!(
                alert_of(&r),
                serde_json::json!({"code": "hard-eol", "message": null, "url": "https://docs.kinto-storage.org/en/stable/api/"})
            );
        }
        for path in [
            "/v1/__heartbeat__",
            "/v1/__lbheartbeat__",
            "/v1/__version__",
        ] {
            let (r, ran) = run(&c, path, at(EOS + 86_400));
            assert!(ran && r.status == 200, "{path}");
            assert_eq!(alert_of(&r)["code"], "hard-eol");
        }
        // Preflights are served, so that the browser makes the request that gets the 410.
        let (r, ran) = run_method(
            &c,
            "OPTIONS",
            "/v1/buckets/x/collections/tabs/records",
            at(EOS),
        );
        assert!(ran && r.status == 200);
        assert_eq!(alert_of(&r)["code"], "hard-eol");
        for method in ["PUT", "DELETE", "POST", "HEAD", "PATCH"] {
            let (r, ran) = run_method(&c, method, "/v1/batch", at(EOS));
            assert!(!ran && r.status == 410, "{method}");
        }
    }

    #[test]
    fn a_past_eos_is_a_start_up_warning() {
        let c = config(None, None);
        let w = passed(&c, at(EOS)).unwrap();
        assert!(
            w.starts_with("eos = 2030-03-17T17:46:40Z is already past"),
            "{w}"
        );
        assert_eq!(passed(&c, at(EOS - 1)), None);
        assert_eq!(passed(&Config::default(), at(EOS)), None);
    }

    #[test]
    fn without_eos_nothing_changes() {
        let (r, ran) = run(&Config::default(), "/v1/", at(EOS * 2));
        assert!(ran && r.status == 200 && !r.has("Alert"));
    }

    #[test]
    fn the_alert_is_ascii_json() {
        let c = config(
            Some("Fin du service \u{e9}t\u{e9} \u{1f44b} \"quoted\"\n"),
            None,
        );
        let (r, _) = run(&c, "/v1/", at(0));
        let (_, raw) = r.headers.iter().find(|(n, _)| *n == "Alert").unwrap();
        assert!(raw.is_ascii() && !raw.contains('\n'), "{raw}");
        assert!(
            raw.contains("\\u00e9") && raw.contains("\\ud83d\\udc4b"),
            "{raw}"
        );
        assert_eq!(
            alert_of(&r)["message"],
            "Fin du service \u{e9}t\u{e9} \u{1f44b} \"quoted\"\n"
        );
    }
}
