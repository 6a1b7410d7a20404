//! The logger: one line per record on stderr, as text or MozLog JSON; the request summary
//! line is in `access.rs`.
//!
//! * **Text**, on a terminal: `2026-11-26T06:45:39.123Z INFO  message` (UTC, milliseconds).
//! * **Under journald** (stderr is the stream `$JOURNAL_STREAM` names, checked by device and
//!   inode as systemd documents, so a variable inherited by a child whose stderr went
//!   elsewhere is not believed): every line, text or JSON, starts with its syslog priority
//!   `<N>`, which journald strips and keeps as the entry's priority (`journalctl -p warning`);
//!   text lines then carry no timestamp, journald adds its own.
//! * **JSON**, for Heka-style pipelines (`logging_renderer = …MozillaHekaRenderer` or
//!   `--log-format json`): one MozLog v2 object per line, `{"Timestamp":…, "Type":…,
//!   "Logger":"syncto", "Hostname":…, "EnvVersion":"2.0", "Severity":…, "Pid":…, "Fields":{…}}`,
//!   serialised by serde_json from `MozLog`.
//!
//! A record logged while a request is being served carries that request's id (`rid`), the
//! one its summary line and its `X-Request-Id` answer header carry, so that an upstream error
//! line can be tied to its request. The server sets it for the thread with [`RequestScope`].
//!
//! Client-controlled text (path, query, User-Agent, messages that quote them) has its control
//! characters replaced with `?` before it is written or serialised (`Clean`): a client must
//! not be able to end a line and forge the next one, or send terminal escapes to whoever
//! reads the log.
//!
//! Why not simplelog, which the design card names: its loggers write a fixed sequence of
//! fields (time, level, thread, target, location, then the formatted message) straight to
//! the writer, so (1) there is no place for the `<N>` priority prefix journald needs, nor for
//! a JSON object; (2) the message is written as formatted, with no hook to scrub a control
//! character a client put in a path; (3) its time comes from the `time` crate, a dependency
//! for a timestamp `src/time.rs` already writes. What it would replace here is the text
//! line's prefix, a dozen lines. So this is a small [`log::Log`] of our own, as ripgrep's is.
//!
//! The summary runs on every request, so lines are built in reused per-thread buffers and
//! written with a single `write_all` under the stderr lock (which also keeps lines from
//! different threads whole). Nothing is formatted when the level filter disables a record.

use std::cell::{Cell, RefCell};
use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use log::{Level, LevelFilter, Log, Metadata, Record};
use serde::{Serialize, Serializer};

mod access;
mod journal;
#[cfg(test)]
mod tests;

pub(crate) use access::{Summary, summary};

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
/// The environment (`$JOURNAL_STREAM` against stderr, the hostname, the pid) is read once,
/// here.
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

/// A request's id: what ties its summary line, the records logged while it was served and its
/// `X-Request-Id` answer header together. At most [`RequestId::MAX`] bytes of
/// `[A-Za-z0-9._:-]`, held inline so that it is `Copy` and costs no allocation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RequestId {
    bytes: [u8; RequestId::MAX],
    len: u8,
}

impl RequestId {
    /// Longest id accepted from a trusted proxy (nginx's `$request_id` is 32).
    pub const MAX: usize = 64;

    /// `text` if it is 1 to [`RequestId::MAX`] bytes of `[A-Za-z0-9._:-]`.
    pub fn parse(text: &str) -> Option<RequestId> {
        let ok = (1..=Self::MAX).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b));
        ok.then(|| {
            let mut bytes = [0; Self::MAX];
            bytes[..text.len()].copy_from_slice(text.as_bytes());
            RequestId {
                bytes,
                len: text.len() as u8,
            }
        })
    }

    /// A new id made by this process: 16 hex digits, a tag drawn at start then a counter, so
    /// ids do not repeat within a run and rarely across restarts.
    pub fn fresh() -> RequestId {
        static TAG: OnceLock<u32> = OnceLock::new();
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let tag = *TAG.get_or_init(|| {
            let mut b = [0u8; 4];
            // Without randomness the ids are still unique within the run.
            let _ = getrandom::getrandom(&mut b);
            u32::from_be_bytes(b)
        });
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut text = String::with_capacity(16);
        let _ = write!(text, "{tag:08x}{n:08x}");
        RequestId::parse(&text).expect("16 hex digits")
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII is ever stored.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("-")
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

thread_local! {
    /// The request this thread is serving, if any.
    static CURRENT: Cell<Option<RequestId>> = const { Cell::new(None) };
}

/// While it lives, records logged on this thread carry `id`; dropping it restores what was
/// there before (so it nests, and a panicking handler cannot leave a stale id behind).
pub struct RequestScope {
    previous: Option<RequestId>,
}

impl RequestScope {
    pub fn enter(id: RequestId) -> RequestScope {
        RequestScope {
            previous: CURRENT.with(|c| c.replace(Some(id))),
        }
    }
}

impl Drop for RequestScope {
    fn drop(&mut self) {
        let _ = CURRENT.try_with(|c| c.set(self.previous));
    }
}

/// The id of the request this thread is serving.
pub fn current_request() -> Option<RequestId> {
    CURRENT.try_with(Cell::get).ok().flatten()
}

/// Turns records and summaries into lines: the format plus what it needs from the
/// environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Renderer {
    /// Text or MozLog JSON.
    pub format: LogFormat,
    /// Stderr is the journal: `<N>` priority prefix (and no timestamp in text).
    pub journald: bool,
    /// MozLog `Hostname`.
    pub hostname: String,
    /// MozLog `Pid`.
    pub pid: u32,
}

/// One MozLog v2 line; `F` is its `Fields` object.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct MozLog<'a, F: Serialize> {
    /// Nanoseconds since the Unix epoch.
    pub timestamp: u64,
    #[serde(rename = "Type")]
    pub kind: &'a str,
    pub logger: &'a str,
    pub hostname: &'a str,
    pub env_version: &'a str,
    /// syslog severity.
    pub severity: u8,
    pub pid: u32,
    pub fields: F,
}

/// The `Fields` of a plain record.
#[derive(Serialize)]
struct Message<'a> {
    msg: Clean<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rid: Option<RequestId>,
}

impl Serialize for RequestId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl Renderer {
    /// A renderer for this process: journald from `$JOURNAL_STREAM` and stderr, the hostname
    /// from `/proc/sys/kernel/hostname` (`localhost` if unreadable), this process's id.
    pub fn detect(format: LogFormat) -> Renderer {
        Renderer {
            format,
            journald: journal::stderr_is_journal(),
            hostname: read_hostname(),
            pid: std::process::id(),
        }
    }

    /// Appends the line (with its `\n`) for a plain log record to `out`; `rid` is the
    /// request being served, if any.
    pub fn render_record(
        &self,
        out: &mut Vec<u8>,
        now: SystemTime,
        level: Level,
        target: &str,
        message: &str,
        rid: Option<RequestId>,
    ) {
        let msg = Clean::new(message, UNLIMITED);
        match self.format {
            LogFormat::Text => {
                self.push_text_prefix(out, now, level);
                let _ = write!(out, "{msg}");
                if let Some(rid) = rid {
                    let _ = write!(out, " rid={rid}");
                }
            }
            LogFormat::Json => self.push_json(out, now, target, level, Message { msg, rid }),
        }
        out.push(b'\n');
    }

    /// Text: the priority under journald, else the timestamp and the padded level.
    fn push_text_prefix(&self, out: &mut Vec<u8>, now: SystemTime, level: Level) {
        if self.journald {
            let _ = write!(out, "<{}>", syslog_severity(level));
        } else {
            let mut stamp = String::with_capacity(24);
            crate::time::push_utc_millis(&mut stamp, now);
            let _ = write!(out, "{stamp} {:<5} ", level.as_str());
        }
    }

    /// JSON: the priority under journald, then the MozLog object (without the newline).
    fn push_json<F: Serialize>(
        &self,
        out: &mut Vec<u8>,
        now: SystemTime,
        kind: &str,
        level: Level,
        fields: F,
    ) {
        let severity = syslog_severity(level);
        if self.journald {
            let _ = write!(out, "<{severity}>");
        }
        let timestamp = now
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let line = MozLog {
            timestamp: u64::try_from(timestamp).unwrap_or(u64::MAX),
            kind,
            logger: LOGGER_NAME,
            hostname: &self.hostname,
            env_version: "2.0",
            severity,
            pid: self.pid,
            fields,
        };
        // Writing to a Vec cannot fail, and every field serialises.
        let _ = serde_json::to_writer(&mut *out, &line);
    }
}

/// Text as it may be logged: cut to at most `cap` bytes on a character boundary (then
/// followed by `…`), control characters (C0, DEL, C1 such as NEL) and the Unicode
/// line/paragraph separators replaced by `?`, and, when `quoted`, `"` and `\` escaped with a
/// backslash (for a quoted text field). Written through `Display`, or serialised as a JSON
/// string by serde_json (which escapes it as JSON), without an intermediate copy.
#[derive(Clone, Copy)]
pub(crate) struct Clean<'a> {
    text: &'a str,
    cap: usize,
    quoted: bool,
}

impl<'a> Clean<'a> {
    pub(crate) fn new(text: &'a str, cap: usize) -> Clean<'a> {
        Clean {
            text,
            cap,
            quoted: false,
        }
    }

    /// For a field written between `"` in a text line.
    pub(crate) fn quoted(text: &'a str, cap: usize) -> Clean<'a> {
        Clean {
            text,
            cap,
            quoted: true,
        }
    }
}

impl Clean<'_> {
    /// The text cut to its cap, and whether it may hold something to replace: a byte that
    /// is not printable ASCII (control characters, and the C1 ones and U+2028/9 among the
    /// rest), or, quoted, `"` or `\`. Most text has none, and is then written as it is.
    fn plain(&self) -> (&str, bool, bool) {
        let (s, cut) = truncate(self.text, self.cap);
        // Anything but printable ASCII is looked at closely; counted without an early exit
        // so that the loop is vectorised (most text is short and all printable).
        let unusual = s.bytes().filter(|b| !(0x20..0x7f).contains(b)).count();
        let quotes = self.quoted && s.bytes().any(|b| b == b'"' || b == b'\\');
        (s, cut, unusual > 0 || quotes)
    }
}

impl fmt::Display for Clean<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (s, cut, suspect) = self.plain();
        if !suspect {
            f.write_str(s)?;
            return if cut { f.write_str("…") } else { Ok(()) };
        }
        // Copy runs of ordinary characters in one go; most input has nothing to replace.
        let mut run = 0;
        for (i, c) in s.char_indices() {
            let replacement = match c {
                c if c.is_control() => "?",
                '\u{2028}' | '\u{2029}' => "?",
                '"' if self.quoted => "\\\"",
                '\\' if self.quoted => "\\\\",
                _ => continue,
            };
            f.write_str(&s[run..i])?;
            f.write_str(replacement)?;
            run = i + c.len_utf8();
        }
        f.write_str(&s[run..])?;
        if cut {
            f.write_str("…")?;
        }
        Ok(())
    }
}

impl Serialize for Clean<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.plain() {
            (text, false, false) => s.serialize_str(text),
            _ => s.serialize_str(&self.to_string()),
        }
    }
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
            self.renderer.render_record(
                line,
                SystemTime::now(),
                record.level(),
                record.target(),
                text,
                current_request(),
            );
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
    line: Vec<u8>,
    message: String,
}

thread_local! {
    static BUFFERS: RefCell<Buffers> = const {
        RefCell::new(Buffers { line: Vec::new(), message: String::new() })
    };
}

/// Runs `f` with this thread's buffers, emptied; with fresh ones when they are in use (a
/// `Display` impl that logs while its record is being formatted) or already destroyed (logging
/// during thread exit). Never panics.
fn with_buffers(f: impl FnOnce(&mut Vec<u8>, &mut String)) {
    let mut f = Some(f);
    let _ = BUFFERS.try_with(|cell| {
        if let Ok(mut buffers) = cell.try_borrow_mut() {
            let Buffers { line, message } = &mut *buffers;
            line.clear();
            message.clear();
            if let Some(f) = f.take() {
                f(line, message);
            }
            if line.capacity() > KEEP_CAPACITY {
                *line = Vec::new();
            }
            if message.capacity() > KEEP_CAPACITY {
                *message = String::new();
            }
        }
    });
    if let Some(f) = f {
        f(&mut Vec::new(), &mut String::new());
    }
}

/// Writes one whole line to stderr.
fn emit(line: &[u8]) {
    // One `write_all` under the lock: lines from concurrent threads never interleave. A failed
    // write (stderr closed) has nowhere to be reported, and must not take a request down.
    let _ = std::io::stderr().lock().write_all(line);
}
