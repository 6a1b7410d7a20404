//! The logger's tests: exact lines in each format, the scrubbing of client text, the
//! request id, and the process-wide logger.

use super::access::Summary;
use super::*;
use serde_json::{Value, json};
use std::time::Duration;

/// 2026-11-26T06:45:39.123456789Z
fn now() -> SystemTime {
    UNIX_EPOCH + Duration::new(1_795_675_539, 123_456_789)
}

fn renderer(format: LogFormat, journald: bool) -> Renderer {
    Renderer {
        format,
        journald,
        hostname: "sync-1.example".to_owned(),
        pid: 4242,
    }
}

fn record(r: &Renderer, level: Level, target: &str, message: &str) -> String {
    let mut out = Vec::new();
    r.render_record(&mut out, now(), level, target, message, None);
    String::from_utf8(out).unwrap()
}

fn summary_line(r: &Renderer, s: &Summary<'_>) -> String {
    let mut out = Vec::new();
    r.render_summary(&mut out, now(), s);
    String::from_utf8(out).unwrap()
}

/// Parses one JSON line, checking it is exactly one line.
fn parse(line: &str) -> Value {
    let body = line.strip_suffix('\n').expect("line ends with \\n");
    assert!(!body.contains('\n'), "{line:?}");
    serde_json::from_str(body).expect("valid JSON")
}

fn request() -> Summary<'static> {
    Summary {
        method: "GET",
        path: "/v1/buckets/syncto/collections/tabs/records",
        query: "_limit=2&_sort=-last_modified",
        status: 200,
        errno: None,
        duration: Duration::from_micros(1_234),
        user_agent: Some("Kinto.js/17"),
        remote: Some("127.0.0.1"),
        request_id: None,
    }
}

#[test]
fn panic_messages_are_one_line() {
    let here = std::panic::Location::caller();
    let m = panic_message(
        Some("worker-3"),
        &"date must be before year 9999",
        Some(here),
    );
    assert_eq!(
        m,
        format!(
            "panic in worker-3 at {}:{}:{}: date must be before year 9999",
            here.file(),
            here.line(),
            here.column()
        )
    );
    let owned = String::from("index out of bounds");
    assert!(panic_message(None, &owned, None).ends_with(": index out of bounds"));
    assert!(panic_message(None, &42u8, None).ends_with(": (no message)"));
    let long = "x".repeat(5000);
    assert!(panic_message(None, &long, None).len() < 1100);
    // Through the renderer the message is one line, whatever it holds.
    let r = renderer(LogFormat::Text, false);
    let line = record(
        &r,
        Level::Error,
        "syncto",
        &panic_message(None, &"a\nb", None),
    );
    assert_eq!(line.matches('\n').count(), 1, "{line:?}");
}

#[test]
fn text_lines_have_utc_millisecond_timestamps_and_padded_levels() {
    let r = renderer(LogFormat::Text, false);
    assert_eq!(
        record(
            &r,
            Level::Info,
            "syncto::server",
            "listening on 127.0.0.1:8000"
        ),
        "2026-11-26T06:45:39.123Z INFO  listening on 127.0.0.1:8000\n"
    );
    assert_eq!(
        record(&r, Level::Error, "x", "boom"),
        "2026-11-26T06:45:39.123Z ERROR boom\n"
    );
    assert_eq!(
        record(&r, Level::Warn, "x", "hm"),
        "2026-11-26T06:45:39.123Z WARN  hm\n"
    );
    assert_eq!(
        record(&r, Level::Trace, "x", "t"),
        "2026-11-26T06:45:39.123Z TRACE t\n"
    );
}

#[test]
fn journald_lines_have_priorities_and_no_timestamp() {
    let r = renderer(LogFormat::Text, true);
    let cases = [
        (Level::Error, "<3>"),
        (Level::Warn, "<4>"),
        (Level::Info, "<6>"),
        (Level::Debug, "<7>"),
        (Level::Trace, "<7>"),
    ];
    for (level, prefix) in cases {
        assert_eq!(record(&r, level, "x", "msg"), format!("{prefix}msg\n"));
    }
    assert_eq!(
        summary_line(&r, &request()),
        "<6>GET /v1/buckets/syncto/collections/tabs/records?_limit=2&_sort=-last_modified \
         200 errno=- 1.234ms ua=\"Kinto.js/17\" remote=127.0.0.1\n"
    );
}

#[test]
fn text_summary_line() {
    let r = renderer(LogFormat::Text, false);
    assert_eq!(
        summary_line(&r, &request()),
        "2026-11-26T06:45:39.123Z INFO  GET /v1/buckets/syncto/collections/tabs/records\
         ?_limit=2&_sort=-last_modified 200 errno=- 1.234ms ua=\"Kinto.js/17\" \
         remote=127.0.0.1\n"
    );
    let failed = Summary {
        method: "PUT",
        path: "/v1/buckets/syncto/collections/tabs/records/abc",
        query: "",
        status: 412,
        errno: Some(114),
        duration: Duration::from_millis(2_001) + Duration::from_micros(7),
        user_agent: None,
        remote: None,
        request_id: None,
    };
    assert_eq!(
        summary_line(&r, &failed),
        "2026-11-26T06:45:39.123Z INFO  PUT /v1/buckets/syncto/collections/tabs/records/abc \
         412 errno=114 2001.007ms ua=- remote=-\n"
    );
}

#[test]
fn json_record_is_mozlog_v2() {
    let r = renderer(LogFormat::Json, false);
    let line = record(
        &r,
        Level::Warn,
        "syncto::config",
        "unknown setting \"cache_backend\"",
    );
    assert!(
        line.starts_with("{\"Timestamp\":1795675539123456789,"),
        "{line}"
    );
    assert_eq!(
        parse(&line),
        json!({
            "Timestamp": 1_795_675_539_123_456_789u64,
            "Type": "syncto::config",
            "Logger": "syncto",
            "Hostname": "sync-1.example",
            "EnvVersion": "2.0",
            "Severity": 4,
            "Pid": 4242,
            "Fields": {"msg": "unknown setting \"cache_backend\""},
        })
    );
    assert_eq!(parse(&record(&r, Level::Error, "t", "m"))["Severity"], 3);
    assert_eq!(parse(&record(&r, Level::Info, "t", "m"))["Severity"], 6);
    assert_eq!(parse(&record(&r, Level::Debug, "t", "m"))["Severity"], 7);
}

#[test]
fn json_summary_uses_cliquet_field_names() {
    let r = renderer(LogFormat::Json, false);
    let s = Summary {
        status: 503,
        errno: Some(201),
        duration: Duration::from_micros(15_999),
        user_agent: Some("Mozilla/5.0 (Android) \"quoted\" \\o/"),
        ..request()
    };
    let v = parse(&summary_line(&r, &s));
    assert_eq!(v["Type"], "request.summary");
    assert_eq!(v["Severity"], 6);
    assert_eq!(v["Logger"], "syncto");
    assert_eq!(
        v["Fields"],
        json!({
            "method": "GET",
            "path": "/v1/buckets/syncto/collections/tabs/records",
            "querystring": "_limit=2&_sort=-last_modified",
            "code": 503,
            "errno": 201,
            "t": 15.999,
            "agent": "Mozilla/5.0 (Android) \"quoted\" \\o/",
            "remote": "127.0.0.1",
        })
    );

    let bare = Summary {
        errno: None,
        user_agent: None,
        remote: None,
        query: "",
        ..request()
    };
    let v = parse(&summary_line(&r, &bare));
    assert_eq!(
        v["Fields"],
        json!({
            "method": "GET",
            "path": "/v1/buckets/syncto/collections/tabs/records",
            "querystring": "",
            "code": 200,
            "t": 1.234,
        })
    );
}

#[test]
fn control_characters_cannot_forge_lines() {
    let forged = "x\r\n2026-11-26T06:45:39.123Z ERROR \u{1b}[31mforged\u{85}\u{2028}\t\u{7f}";
    let cleaned = "x??2026-11-26T06:45:39.123Z ERROR ?[31mforged????";

    let text = renderer(LogFormat::Text, false);
    assert_eq!(
        record(&text, Level::Info, "x", forged),
        format!("2026-11-26T06:45:39.123Z INFO  {cleaned}\n")
    );
    let s = Summary {
        path: "/v1/\n",
        query: "a=\r\n",
        user_agent: Some(forged),
        ..request()
    };
    let line = summary_line(&text, &s);
    assert_eq!(line.matches('\n').count(), 1, "{line:?}");
    assert!(
        line.contains("GET /v1/??a=?? 200 ") && line.contains(&format!("ua=\"{cleaned}\"")),
        "{line:?}"
    );

    let json = renderer(LogFormat::Json, false);
    let v = parse(&record(&json, Level::Info, "x", forged));
    assert_eq!(v["Fields"]["msg"], cleaned);
    let v = parse(&summary_line(&json, &s));
    assert_eq!(v["Fields"]["agent"], cleaned);
    assert_eq!(v["Fields"]["path"], "/v1/?");
    assert_eq!(v["Fields"]["querystring"], "a=??");
}

#[test]
fn long_user_agents_and_queries_are_cut_on_a_char_boundary() {
    // 511 ASCII bytes then a 2-byte 'é' straddling the 512-byte limit.
    let agent = format!("{}é{}", "a".repeat(511), "b".repeat(100));
    let query = format!("q={}", "€".repeat(300)); // 2 + 900 bytes
    let s = Summary {
        user_agent: Some(&agent),
        query: &query,
        ..request()
    };

    let v = parse(&summary_line(&renderer(LogFormat::Json, false), &s));
    assert_eq!(v["Fields"]["agent"], format!("{}…", "a".repeat(511)));
    // 2 + 170 × 3 = 512 bytes fit exactly.
    assert_eq!(
        v["Fields"]["querystring"],
        format!("q={}…", "€".repeat(170))
    );

    let line = summary_line(&renderer(LogFormat::Text, false), &s);
    assert!(
        line.contains(&format!("?q={}… 200 ", "€".repeat(170))),
        "{line}"
    );
    assert!(
        line.contains(&format!("ua=\"{}…\" ", "a".repeat(511))),
        "{line}"
    );

    // At the limit: untouched.
    let exact = "x".repeat(MAX_FIELD_BYTES);
    assert_eq!(Clean::new(&exact, MAX_FIELD_BYTES).to_string(), exact);
}

/// Everything that touches the process-wide logger, in one test: tests run in parallel and
/// the logger and level are global.
#[test]
fn global_logger() {
    // A test-only Summary that would be visible if it were logged.
    let s = Summary {
        path: "/syncto-logging-test",
        ..request()
    };
    // Capacity of the calling thread's line buffer after `f`, on a fresh thread so that
    // nothing else has used its buffers.
    fn line_capacity_after(f: impl FnOnce() + Send + 'static) -> usize {
        std::thread::spawn(|| {
            f();
            BUFFERS.with(|b| b.borrow().line.capacity())
        })
        .join()
        .unwrap()
    }

    init(LogFormat::Text, LevelFilter::Warn);
    assert!(installed().is_some());
    assert_eq!(log::max_level(), LevelFilter::Warn);
    // Later calls change nothing.
    init(LogFormat::Json, LevelFilter::Trace);
    assert_eq!(log::max_level(), LevelFilter::Warn);
    assert_eq!(installed().unwrap().renderer.format, LogFormat::Text);

    // Info disabled: the summary returns before formatting anything.
    assert_eq!(line_capacity_after(move || summary(&s)), 0);
    // Info enabled: it is formatted in the thread's buffer (and printed on stderr).
    log::set_max_level(LevelFilter::Info);
    let capacity = line_capacity_after(move || summary(&s));
    log::set_max_level(LevelFilter::Warn);
    assert!(capacity > 0);

    // A value whose Display logs: the nested record finds the buffers busy and must not
    // panic (it uses fresh ones).
    struct Nested;
    impl std::fmt::Display for Nested {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            log::warn!("syncto logging test: nested record");
            f.write_str("outer")
        }
    }
    log::warn!("syncto logging test: {}", Nested);
}

#[test]
fn under_journald_json_lines_carry_their_priority_too() {
    let r = renderer(LogFormat::Json, true);
    for (level, prefix) in [
        (Level::Error, "<3>{"),
        (Level::Warn, "<4>{"),
        (Level::Info, "<6>{"),
    ] {
        let line = record(&r, level, "x", "m");
        assert!(line.starts_with(prefix), "{line}");
        // What journald keeps after the prefix is the MozLog object.
        let v = parse(&line[3..]);
        assert_eq!(v["Fields"]["msg"], "m");
    }
    assert!(summary_line(&r, &request()).starts_with("<6>{\"Timestamp\":"));
}

#[test]
fn records_logged_while_a_request_is_served_carry_its_id() {
    let id = RequestId::parse("5f3a09c100000001").unwrap();
    let mut out = Vec::new();
    let text = renderer(LogFormat::Text, false);
    text.render_record(
        &mut out,
        now(),
        Level::Warn,
        "x",
        "Token Server unreachable",
        Some(id),
    );
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "2026-11-26T06:45:39.123Z WARN  Token Server unreachable rid=5f3a09c100000001\n"
    );
    let mut out = Vec::new();
    let json = renderer(LogFormat::Json, false);
    json.render_record(&mut out, now(), Level::Warn, "x", "m", Some(id));
    let v = parse(std::str::from_utf8(&out).unwrap());
    assert_eq!(v["Fields"], json!({"msg": "m", "rid": "5f3a09c100000001"}));
    let s = Summary {
        request_id: Some(id),
        ..request()
    };
    assert!(summary_line(&text, &s).ends_with(" remote=127.0.0.1 rid=5f3a09c100000001\n"));
    assert_eq!(
        parse(&summary_line(&json, &s))["Fields"]["rid"],
        "5f3a09c100000001"
    );

    // The scope sets the thread's id and puts back the previous one, nested or not.
    assert_eq!(current_request(), None);
    {
        let _outer = RequestScope::enter(id);
        let inner_id = RequestId::fresh();
        {
            let _inner = RequestScope::enter(inner_id);
            assert_eq!(current_request(), Some(inner_id));
        }
        assert_eq!(current_request(), Some(id));
    }
    assert_eq!(current_request(), None);
}

#[test]
fn request_ids_are_checked_and_fresh_ones_differ() {
    for good in [
        "a",
        "0123456789abcdef0123456789abcdef",
        "req-1.2:3_x",
        &"x".repeat(64),
    ] {
        assert_eq!(
            RequestId::parse(good).map(|r| r.to_string()).as_deref(),
            Some(good)
        );
    }
    for bad in ["", "a b", "a\nb", "é", "a\"b", "a,b", &"x".repeat(65)] {
        assert!(RequestId::parse(bad).is_none(), "{bad:?}");
    }
    let (a, b) = (RequestId::fresh(), RequestId::fresh());
    assert_ne!(a, b);
    assert_eq!(a.as_str().len(), 16);
    assert!(a.as_str().bytes().all(|c| c.is_ascii_hexdigit()));
}
