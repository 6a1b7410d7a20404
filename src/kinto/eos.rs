//! End of service (`eos`, `eos_message`, `eos_url`).
//!
//! Before the `eos` moment every response carries
//! `Alert: {"code": "soft-eol", "message": …, "url": …}` so that clients can warn their
//! users. From that moment on every request is answered 410, errno 202, with a `hard-eol`
//! Alert, and nothing is forwarded upstream, except the health checks (`__heartbeat__`,
//! `__lbheartbeat__`, `__version__`): a load balancer must keep the node in rotation, or
//! clients would get its 502 instead of the explanation.
//!
//! `message` is `null` without `eos_message`; `url` falls back to `project_docs`. The Alert
//! value is JSON with every non-ASCII character escaped, so any message fits in a header.

use super::Response;
use super::error::Error;
use super::route::{Route, Routed, route};
use crate::config::Config;
use std::time::{SystemTime, UNIX_EPOCH};

/// Runs `serve` unless the service has ended (then answers 410 without running it), and
/// adds the end-of-service Alert to the response when `eos` is set.
pub fn guard<T: Default>(
    config: &Config,
    path: &str,
    now: SystemTime,
    serve: impl FnOnce() -> (Response, T),
) -> (Response, T) {
    let Some(eos) = &config.eos else {
        return serve();
    };
    let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let ended = now >= eos.at;
    let (mut resp, extra) = if ended && !is_health_check(path) {
        let r = Error::ServiceDeprecated
            .parts()
            .into_response(config.retry_after_seconds);
        (r, T::default())
    } else {
        serve()
    };
    let code = if ended { "hard-eol" } else { "soft-eol" };
    resp.set("Alert", alert(config, code));
    (resp, extra)
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
        let mut ran = false;
        let (r, _) = guard(config, path, now, || {
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
                serde_json::json!({"code": "hard-eol", "message": null, "url": "https://syncto.readthedocs.io/"})
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
