//! The logger: one line per record on stderr, as text or MozLog JSON, and the one summary
//! line per HTTP request.
//!
//! A small hand-written [`log::Log`] rather than env_logger or simplelog, because neither
//! prints journald priorities or MozLog out of the box, and the whole thing is a page.
//!
//! * **Text**, on a terminal: `2026-11-26T06:45:39.123Z INFO  message` (UTC, milliseconds).
//!   Under systemd (`$JOURNAL_STREAM` set) the line is `<6>message` instead: journald reads the
//!   syslog priority from the prefix and adds its own timestamp.
//! * **JSON**, for Heka-style pipelines (`logging_renderer = …MozillaHekaRenderer` or
//!   `--log-format json`): one MozLog v2 object per line, `{"Timestamp":…, "Type":…,
//!   "Logger":"syncto", "Hostname":…, "EnvVersion":"2.0", "Severity":…, "Pid":…, "Fields":{…}}`.
//!
//! The request summary (`summary`) uses cliquet's field names (`method`, `path`,
//! `querystring`, `code`, `errno`, `t`, `agent`) so existing dashboards keep working. Request
//! headers other than the User-Agent are never logged, so no Authorization value, token or key
//! can end up in a log.
//!
//! Client-controlled text (path, query, User-Agent) and messages have their control characters
//! replaced with `?`: a client must not be able to end a line and forge the next one, or send
//! terminal escapes to whoever reads the log. The User-Agent and the query are cut at
//! `MAX_FIELD_BYTES`.
//!
//! The summary runs on every request, so the line is built in a reused per-thread buffer and
//! written with a single `write_all` under the stderr lock (which also keeps lines from
//! different threads whole). Nothing is formatted when the level filter disables info.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use log::{Level, LevelFilter, Log, Metadata, Record};

/// Target (and MozLog `Type`) of the per-request summary line, as in cliquet.
pub(crate) const SUMMARY_TARGET: &str = "request.summary";

/// Longest User-Agent or query string logged, in bytes; longer ones are cut on a character
/// boundary and end with `…`.
pub(crate) const MAX_FIELD_BYTES: usize = 512;

/// MozLog `Logger` field.
const LOGGER_NAME: &str = "syncto";

/// No length limit, for fields that are short or already bounded.
const UNLIMITED: usize = usize::MAX;

/// Per-thread buffers larger than this after a line are freed rather than kept, so one huge
/// message does not pin memory in every worker thread.
const KEEP_CAPACITY: usize = 16 * 1024;

/// How log lines are rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One human-readable line per event (cliquet's `ClassicLogRenderer`).
    Text,
    /// MozLog JSON (cliquet's `MozillaHekaRenderer`).
    Json,
}

impl LogFormat {
    /// `text` or `json`, as accepted by `--log-format` and `log_format`.
    pub fn from_name(name: &str) -> Option<LogFormat> {
        match name.trim().to_ascii_lowercase().as_str() {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
    }
}

static LOGGER: OnceLock<Logger> = OnceLock::new();
/// Whether `LOGGER` is the global logger (`log::set_logger` fails if another one was set).
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Installs the global logger, writing to stderr in `format`, with `level` as the maximum
/// level. Only the first call has an effect; later calls (and calls after another logger was
/// installed) are no-ops.
///
/// The environment (`$JOURNAL_STREAM`, the hostname, the pid) is read once, here.
pub fn init(format: LogFormat, level: LevelFilter) {
    let mut first = false;
    let logger = LOGGER.get_or_init(|| {
        first = true;
        Logger {
            renderer: Renderer::detect(format),
        }
    });
    if first && log::set_logger(logger).is_ok() {
        INSTALLED.store(true, Ordering::Release);
        log::set_max_level(level);
    }
}

/// Sends panic messages through the logger: one `error` line in the configured format (thread,
/// message, source location) instead of Rust's raw multi-line text on stderr. The request that
/// panicked still gets its 500. Call after [`init`].
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        log::error!(
            "{}",
            panic_message(thread.name(), info.payload(), info.location())
        );
    }));
}

/// Longest panic message logged, in bytes.
const MAX_PANIC_MESSAGE: usize = 1024;

/// `panic in worker-3 at src/x.rs:10:5: <message>`.
fn panic_message(
    thread: Option<&str>,
    payload: &(dyn std::any::Any + Send),
    location: Option<&std::panic::Location<'_>>,
) -> String {
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)");
    let (message, cut) = truncate(message, MAX_PANIC_MESSAGE);
    let mut out = format!("panic in {}", thread.unwrap_or("an unnamed thread"));
    if let Some(l) = location {
        let _ = write!(out, " at {}:{}:{}", l.file(), l.line(), l.column());
    }
    let _ = write!(out, ": {message}{}", if cut { "…" } else { "" });
    out
}

/// What one HTTP request's summary line says: method, path, query, status, errno,
/// duration, User-Agent and peer; no other header, so never a credential.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Summary<'a> {
    /// Request method, as received.
    pub method: &'a str,
    /// Request path, without the query string.
    pub path: &'a str,
    /// Raw query string without the `?`; empty when there is none.
    pub query: &'a str,
    /// Response status code.
    pub status: u16,
    /// Kinto errno of an error response.
    pub errno: Option<u16>,
    /// Time from reading the request to writing the response.
    pub duration: Duration,
    /// `User-Agent` header: the only header ever logged.
    pub user_agent: Option<&'a str>,
    /// Peer address (IP, or the Unix socket's peer).
    pub remote: Option<&'a str>,
}

/// Logs one request summary at info level, target [`SUMMARY_TARGET`].
///
/// With Syncto's logger installed the line is structured (MozLog `Fields`); under another
/// logger (say, a test harness's) it is logged as a text message.
pub(crate) fn summary(s: &Summary<'_>) {
    // First, so a server running at `warn` pays nothing per request.
    if !log::log_enabled!(target: SUMMARY_TARGET, Level::Info) {
        return;
    }
    match installed() {
        Some(logger) => with_buffers(|line, _| {
            logger.renderer.render_summary(line, SystemTime::now(), s);
            emit(line);
        }),
        None => {
            let mut text = String::new();
            push_summary_text(&mut text, s);
            log::info!(target: SUMMARY_TARGET, "{text}");
        }
    }
}

/// Turns records and summaries into lines: the format plus what it needs from the
/// environment. Public so that tests can check exact lines without capturing stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Renderer {
    /// Text or MozLog JSON.
    pub format: LogFormat,
    /// Text under journald: `<N>` priority prefix and no timestamp.
    pub journald: bool,
    /// MozLog `Hostname`.
    pub hostname: String,
    /// MozLog `Pid`.
    pub pid: u32,
}

impl Renderer {
    /// A renderer for this process: journald from `$JOURNAL_STREAM`, the hostname from
    /// `/proc/sys/kernel/hostname` (`localhost` if unreadable), this process's id.
    pub fn detect(format: LogFormat) -> Renderer {
        Renderer {
            format,
            journald: crate::systemd::under_journald(),
            hostname: read_hostname(),
            pid: std::process::id(),
        }
    }

    /// Appends the line (with its `\n`) for a plain log record to `out`.
    pub fn render_record(
        &self,
        out: &mut String,
        now: SystemTime,
        level: Level,
        target: &str,
        message: &str,
    ) {
        match self.format {
            LogFormat::Text => {
                self.push_text_prefix(out, now, level);
                push_clean(out, message, UNLIMITED, Escape::None);
                out.push('\n');
            }
            LogFormat::Json => {
                self.push_json_head(out, now, target, level);
                out.push_str("\"msg\":");
                push_json_str(out, message, UNLIMITED);
                out.push_str("}}\n");
            }
        }
    }

    /// Appends the line (with its `\n`) for a request summary to `out`.
    pub fn render_summary(&self, out: &mut String, now: SystemTime, s: &Summary<'_>) {
        match self.format {
            LogFormat::Text => {
                self.push_text_prefix(out, now, Level::Info);
                push_summary_text(out, s);
                out.push('\n');
            }
            LogFormat::Json => {
                self.push_json_head(out, now, SUMMARY_TARGET, Level::Info);
                out.push_str("\"method\":");
                push_json_str(out, s.method, UNLIMITED);
                out.push_str(",\"path\":");
                push_json_str(out, s.path, UNLIMITED);
                out.push_str(",\"querystring\":");
                push_json_str(out, s.query, MAX_FIELD_BYTES);
                let _ = write!(out, ",\"code\":{}", s.status);
                if let Some(errno) = s.errno {
                    let _ = write!(out, ",\"errno\":{errno}");
                }
                let _ = write!(out, ",\"t\":{}", s.duration.as_millis());
                // Absent values are left out, like errno, rather than written as null.
                if let Some(agent) = s.user_agent {
                    out.push_str(",\"agent\":");
                    push_json_str(out, agent, MAX_FIELD_BYTES);
                }
                if let Some(remote) = s.remote {
                    out.push_str(",\"remote\":");
                    push_json_str(out, remote, UNLIMITED);
                }
                out.push_str("}}\n");
            }
        }
    }

    fn push_text_prefix(&self, out: &mut String, now: SystemTime, level: Level) {
        if self.journald {
            let _ = write!(out, "<{}>", syslog_severity(level));
        } else {
            push_timestamp(out, now);
            let _ = write!(out, " {:<5} ", level.as_str());
        }
    }

    /// Everything up to and including the `{` that opens `Fields`.
    fn push_json_head(&self, out: &mut String, now: SystemTime, kind: &str, level: Level) {
        let nanos = now
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let _ = write!(out, "{{\"Timestamp\":{nanos},\"Type\":");
        push_json_str(out, kind, UNLIMITED);
        let _ = write!(out, ",\"Logger\":\"{LOGGER_NAME}\",\"Hostname\":");
        push_json_str(out, &self.hostname, UNLIMITED);
        let _ = write!(
            out,
            ",\"EnvVersion\":\"2.0\",\"Severity\":{},\"Pid\":{},\"Fields\":{{",
            syslog_severity(level),
            self.pid
        );
    }
}

/// `GET /v1/…/records?_limit=2 200 errno=- 1.234ms ua="Kinto.js/17" remote=127.0.0.1`
fn push_summary_text(out: &mut String, s: &Summary<'_>) {
    push_clean(out, s.method, UNLIMITED, Escape::None);
    out.push(' ');
    push_clean(out, s.path, UNLIMITED, Escape::None);
    if !s.query.is_empty() {
        out.push('?');
        push_clean(out, s.query, MAX_FIELD_BYTES, Escape::None);
    }
    let _ = write!(out, " {} errno=", s.status);
    match s.errno {
        Some(errno) => {
            let _ = write!(out, "{errno}");
        }
        None => out.push('-'),
    }
    let micros = s.duration.as_micros();
    let _ = write!(out, " {}.{:03}ms ua=", micros / 1000, micros % 1000);
    match s.user_agent {
        // Quoted because user agents contain spaces; quotes inside are escaped so the field
        // still ends where it seems to.
        Some(agent) => {
            out.push('"');
            push_clean(out, agent, MAX_FIELD_BYTES, Escape::Quotes);
            out.push('"');
        }
        None => out.push('-'),
    }
    out.push_str(" remote=");
    match s.remote {
        Some(remote) => push_clean(out, remote, UNLIMITED, Escape::None),
        None => out.push('-'),
    }
}

/// Whether `"` and `\` get a backslash (inside JSON or quoted text fields).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Escape {
    None,
    Quotes,
}

/// Appends `s`, cut to at most `cap` bytes (then followed by `…`), with control characters
/// (C0, DEL, C1 such as NEL) and the Unicode line/paragraph separators replaced by `?`.
fn push_clean(out: &mut String, s: &str, cap: usize, escape: Escape) {
    let (s, cut) = truncate(s, cap);
    // Copy runs of ordinary characters in one go; most input has nothing to replace.
    let mut run = 0;
    for (i, c) in s.char_indices() {
        let replacement = match c {
            c if c.is_control() => "?",
            '\u{2028}' | '\u{2029}' => "?",
            '"' if escape == Escape::Quotes => "\\\"",
            '\\' if escape == Escape::Quotes => "\\\\",
            _ => continue,
        };
        out.push_str(&s[run..i]);
        out.push_str(replacement);
        run = i + c.len_utf8();
    }
    out.push_str(&s[run..]);
    if cut {
        out.push('…');
    }
}

/// Appends `s` as a JSON string. Once control characters are gone, only `"` and `\` need
/// escaping: everything else is valid as is in a JSON string.
fn push_json_str(out: &mut String, s: &str, cap: usize) {
    out.push('"');
    push_clean(out, s, cap, Escape::Quotes);
    out.push('"');
}

/// `s` cut to at most `cap` bytes on a character boundary, and whether it was cut.
fn truncate(s: &str, cap: usize) -> (&str, bool) {
    if s.len() <= cap {
        return (s, false);
    }
    // `str::floor_char_boundary` is newer than our rust-version.
    let mut end = cap;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    (&s[..end], true)
}

/// syslog severity, as journald's `<N>` prefix and MozLog's `Severity`.
fn syslog_severity(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

/// Appends `now` as `2026-11-26T06:45:39.123Z`. A clock before 1970 prints as the epoch.
fn push_timestamp(out: &mut String, now: SystemTime) {
    let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since_epoch.as_secs();
    let (year, month, day) = civil_from_days(secs / 86_400);
    let secs_of_day = secs % 86_400;
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        secs_of_day / 3_600,
        secs_of_day / 60 % 60,
        secs_of_day % 60,
        since_epoch.subsec_millis()
    );
}

/// (year, month, day) of the proleptic Gregorian calendar for a number of days since
/// 1970-01-01: Howard Hinnant's `civil_from_days`, restricted to dates after the epoch.
/// The year is counted from March, so that February 29th is the last day of a year.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z / 146_097; // 400-year cycles
    let doe = z % 146_097; // day of era, [0, 146096]
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // year of era, [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of the March-based year, [0, 365]
    let mp = (5 * doy + 2) / 153; // month, March = 0, [0, 11]
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = era * 400 + yoe + u64::from(month <= 2);
    (year, month, day)
}

fn read_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

struct Logger {
    renderer: Renderer,
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        // Filtering is `log::set_max_level`'s job; this only guards direct `Log::log` calls.
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        with_buffers(|line, message| {
            // A message without arguments is a `&'static str`: no need to format it.
            let text = match record.args().as_str() {
                Some(text) => text,
                None => {
                    let _ = write!(message, "{}", record.args());
                    message.as_str()
                }
            };
            let now = SystemTime::now();
            let target = record.target();
            self.renderer
                .render_record(line, now, record.level(), target, text);
            emit(line);
        });
    }

    fn flush(&self) {
        let _ = std::io::stderr().flush();
    }
}

fn installed() -> Option<&'static Logger> {
    if INSTALLED.load(Ordering::Acquire) {
        LOGGER.get()
    } else {
        None
    }
}

/// This thread's reusable line and message buffers.
struct Buffers {
    line: String,
    message: String,
}

thread_local! {
    static BUFFERS: RefCell<Buffers> = const {
        RefCell::new(Buffers { line: String::new(), message: String::new() })
    };
}

/// Runs `f` with this thread's buffers, emptied; with fresh ones when they are in use (a
/// `Display` impl that logs while its record is being formatted) or already destroyed (logging
/// during thread exit). Never panics.
fn with_buffers(f: impl FnOnce(&mut String, &mut String)) {
    let mut f = Some(f);
    let _ = BUFFERS.try_with(|cell| {
        if let Ok(mut buffers) = cell.try_borrow_mut() {
            let Buffers { line, message } = &mut *buffers;
            line.clear();
            message.clear();
            if let Some(f) = f.take() {
                f(line, message);
            }
            for buffer in [line, message] {
                if buffer.capacity() > KEEP_CAPACITY {
                    *buffer = String::new();
                }
            }
        }
    });
    if let Some(f) = f {
        f(&mut String::new(), &mut String::new());
    }
}

/// Writes one whole line to stderr.
fn emit(line: &str) {
    // One `write_all` under the lock: lines from concurrent threads never interleave. A failed
    // write (stderr closed) has nowhere to be reported, and must not take a request down.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

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
        let mut out = String::new();
        r.render_record(&mut out, now(), level, target, message);
        out
    }

    fn summary_line(r: &Renderer, s: &Summary<'_>) -> String {
        let mut out = String::new();
        r.render_summary(&mut out, now(), s);
        out
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
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(59), (1970, 3, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(11_017), (2000, 3, 1));
        assert_eq!(civil_from_days(20_783), (2026, 11, 26));
        // 2100 is not a leap year.
        assert_eq!(civil_from_days(47_540), (2100, 2, 28));
        assert_eq!(civil_from_days(47_541), (2100, 3, 1));
    }

    #[test]
    fn timestamps_agree_with_httpdate() {
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        // Every 997,331 s (about 11.5 days, so every day of the month and hour come up) from
        // 1970 to the end of 9999, the last year HTTP dates can express.
        let mut secs = 0u64;
        while secs <= 253_402_300_799 {
            let t = UNIX_EPOCH + Duration::from_secs(secs);
            let mut ours = String::new();
            push_timestamp(&mut ours, t);
            // "1970-01-01T00:00:00.000Z" → "01 Jan 1970 00:00:00" as in "Thu, 01 Jan 1970 …".
            let month: usize = ours[5..7].parse().unwrap();
            let expected = format!(
                "{} {} {} {}",
                &ours[8..10],
                MONTHS[month - 1],
                &ours[0..4],
                &ours[11..19]
            );
            let http = httpdate::fmt_http_date(t);
            assert_eq!(&http[5..25], expected, "at {secs} s");
            assert_eq!(&ours[19..], ".000Z");
            secs += 997_331;
        }
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
        };
        assert_eq!(
            summary_line(&r, &failed),
            "2026-11-26T06:45:39.123Z INFO  PUT /v1/buckets/syncto/collections/tabs/records/abc \
             412 errno=114 2001.007ms ua=- remote=-\n"
        );
    }

    #[test]
    fn json_record_is_mozlog_v2() {
        let r = renderer(LogFormat::Json, true); // journald changes nothing in JSON
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
                "t": 15,
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
                "t": 1,
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
        let mut out = String::new();
        push_clean(&mut out, &exact, MAX_FIELD_BYTES, Escape::None);
        assert_eq!(out, exact);
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
}
