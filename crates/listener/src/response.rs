//! An answer: status, headers and a body already in memory, written with its
//! head in one `writev`.
//!
//! Every body has a known length and goes out with its `Content-Length`,
//! never in chunks: chunks would only add framing (and a write per chunk)
//! to bytes that are all there. A response can be stopped part way (the
//! client stopped reading) and finished later from where it stopped, by
//! another thread: see [`Rest`] and `Request::respond_or_hand_over`.

use crate::common::{HTTPVersion, Header, StatusCode};
use httpdate::HttpDate;
use std::io::{self, IoSlice, Write};
use std::time::SystemTime;

/// What a body is: any bytes in memory, dropped once written (so that a
/// buffer type of the caller's can take itself back then).
type Body = Box<dyn AsRef<[u8]> + Send>;

/// An HTTP response, given to [`crate::Request::respond`].
///
/// `Connection`, `Trailer`, `Transfer-Encoding` and `Upgrade` are the
/// listener's to write: setting them has no effect. `Content-Length` is the
/// body's length. A second `Content-Type` replaces the first.
pub struct Response {
    status_code: StatusCode,
    headers: Vec<Header>,
    body: Body,
}

impl Response {
    /// A response with this status, these headers and this body.
    pub fn new<B>(status_code: StatusCode, headers: Vec<Header>, body: B) -> Response
    where
        B: AsRef<[u8]> + Send + 'static,
    {
        let mut response = Response {
            status_code,
            headers: Vec::with_capacity(headers.len() + 3),
            body: Box::new(body),
        };
        for h in headers {
            response.add_header(h);
        }
        response
    }

    /// 200 with `data` as its body.
    pub fn from_data(data: impl Into<Vec<u8>>) -> Response {
        Response::new(StatusCode(200), Vec::new(), data.into())
    }

    /// 200 with `text` as a `text/plain; charset=UTF-8` body.
    pub fn from_string(text: impl Into<String>) -> Response {
        let content_type =
            Header::from_bytes(&b"Content-Type"[..], &b"text/plain; charset=UTF-8"[..]).unwrap();
        Response::new(
            StatusCode(200),
            vec![content_type],
            text.into().into_bytes(),
        )
    }

    /// An empty response with this status.
    pub fn empty(status_code: impl Into<StatusCode>) -> Response {
        Response::new(status_code.into(), Vec::new(), Vec::new())
    }

    /// Adds a header (see the type's documentation for those that can't be
    /// set).
    pub fn add_header(&mut self, header: impl Into<Header>) {
        let header = header.into();
        if [
            "Connection",
            "Trailer",
            "Transfer-Encoding",
            "Upgrade",
            "Content-Length",
        ]
        .iter()
        .any(|name| header.field.equiv(name))
        {
            return;
        }
        if header.field.equiv("Content-Type") {
            if let Some(h) = self
                .headers
                .iter_mut()
                .find(|h| h.field.equiv("Content-Type"))
            {
                h.value = header.value;
                return;
            }
        }
        self.headers.push(header);
    }

    /// The same response with one more header.
    pub fn with_header(mut self, header: impl Into<Header>) -> Response {
        self.add_header(header);
        self
    }

    /// The same response with another status.
    pub fn with_status_code(mut self, code: impl Into<StatusCode>) -> Response {
        self.status_code = code.into();
        self
    }

    /// The status.
    pub fn status_code(&self) -> StatusCode {
        self.status_code
    }

    /// The headers set so far (without those the listener adds).
    pub fn headers(&self) -> &[Header] {
        &self.headers
    }

    /// The length of the body.
    pub fn len(&self) -> usize {
        (*self.body).as_ref().len()
    }

    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes the response (head and body in one `writev` when the writer
    /// takes it). `head_only` leaves the body out (a HEAD request), `close`
    /// says `Connection: close`. Does not flush.
    pub fn raw_print<W: Write>(
        self,
        writer: W,
        http_version: HTTPVersion,
        head_only: bool,
        close: bool,
    ) -> io::Result<()> {
        self.print(writer, http_version, head_only, close)
            .map_err(|(e, _)| e)
    }

    /// [`Response::raw_print`], which on failure also gives back what is
    /// left to write.
    pub(crate) fn print<W: Write>(
        self,
        mut writer: W,
        http_version: HTTPVersion,
        head_only: bool,
        close: bool,
    ) -> Result<(), (io::Error, Rest)> {
        let mut rest = self.into_rest(http_version, head_only, close);
        match rest.write_to(&mut writer) {
            Ok(()) => Ok(()),
            Err(e) => Err((e, rest)),
        }
    }

    /// The bytes to write: the head formatted, and the body unless it must
    /// not be sent.
    fn into_rest(self, http_version: HTTPVersion, head_only: bool, close: bool) -> Rest {
        let len = self.len();
        // 1xx, 204 and 304 never have a body; the others say how long theirs
        // is (a HEAD request's answer says how long it would be).
        let no_body = matches!(self.status_code.0, 100..=199 | 204 | 304);
        let mut head = Vec::with_capacity(256);
        let _ = write!(
            head,
            "HTTP/{}.{} {} {}\r\n",
            http_version.0,
            http_version.1,
            self.status_code.0,
            self.status_code.default_reason_phrase()
        );
        if !self.headers.iter().any(|h| h.field.equiv("Date")) {
            let _ = write!(head, "Date: {}\r\n", HttpDate::from(SystemTime::now()));
        }
        for header in &self.headers {
            // A header whose name is not a token or whose value holds a
            // control character (CR, LF, NUL…) is never written: such bytes
            // would end the header early and let a value that came from a
            // request (a path, a query) add headers or a body of its own.
            if !writable(header) {
                log::warn!(
                    "response header {:?} dropped: control characters in its name or value",
                    header.field.as_str().as_str().escape_debug().to_string()
                );
                continue;
            }
            head.extend_from_slice(header.field.as_str().as_bytes());
            head.extend_from_slice(b": ");
            head.extend_from_slice(header.value.as_bytes());
            head.extend_from_slice(b"\r\n");
        }
        if close {
            head.extend_from_slice(b"Connection: close\r\n");
        }
        if !no_body {
            let _ = write!(head, "Content-Length: {len}\r\n");
        }
        head.extend_from_slice(b"\r\n");
        Rest {
            head,
            body: (!head_only && !no_body && len > 0).then_some(self.body),
            written: 0,
        }
    }
}

impl Clone for Response {
    fn clone(&self) -> Response {
        Response {
            status_code: self.status_code,
            headers: self.headers.clone(),
            body: Box::new((*self.body).as_ref().to_vec()),
        }
    }
}

/// A name made of token characters and a value without control characters
/// other than HTAB.
fn writable(header: &Header) -> bool {
    let name = header.field.as_str().as_bytes();
    !name.is_empty()
        && name.iter().all(|&b| crate::common::is_tchar(b))
        && header
            .value
            .as_bytes()
            .iter()
            .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
}

/// `Write::write_all_vectored`, which is not stable: write every byte of
/// `bufs`, in as few calls as the writer allows, counting in `written` the
/// bytes that left (also when it fails part way).
fn write_all_vectored<W: Write>(
    writer: &mut W,
    mut bufs: &mut [IoSlice<'_>],
    written: &mut usize,
) -> io::Result<()> {
    IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        match writer.write_vectored(bufs) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                *written += n;
                IoSlice::advance_slices(&mut bufs, n)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A response held in memory (head and body), of which the first `written`
/// bytes have left.
pub(crate) struct Rest {
    head: Vec<u8>,
    body: Option<Body>,
    written: usize,
}

impl Rest {
    /// Writes what has not left yet.
    pub(crate) fn write_to<W: Write>(&mut self, mut writer: W) -> io::Result<()> {
        let body: &[u8] = self.body.as_ref().map_or(&[], |b| (**b).as_ref());
        let (head, body) = if self.written < self.head.len() {
            (&self.head[self.written..], body)
        } else {
            (&[][..], &body[self.written - self.head.len()..])
        };
        write_all_vectored(
            &mut writer,
            &mut [IoSlice::new(head), IoSlice::new(body)],
            &mut self.written,
        )
    }

    /// Bytes still to write.
    pub(crate) fn left(&self) -> usize {
        self.size() - self.written
    }

    /// Bytes of the whole response (what it holds in memory).
    pub(crate) fn size(&self) -> usize {
        let body = self.body.as_ref().map_or(0, |b| (**b).as_ref().len());
        self.head.len() + body
    }
}

#[cfg(test)]
mod tests {
    use super::{Header, Response};
    use crate::common::{HTTPVersion, StatusCode};

    fn written(name: &[u8], value: &[u8]) -> String {
        let header = Header::from_bytes(name, value).unwrap();
        let mut out = Vec::new();
        Response::from_string("x")
            .with_header(header)
            .raw_print(&mut out, HTTPVersion(1, 1), false, false)
            .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn headers_with_control_characters_are_never_written() {
        for (name, value) in [
            (&b"Location"[..], &b"/x\r\nSet-Cookie: a=b"[..]),
            (b"Location", b"/x\nSet-Cookie: a=b"),
            (b"Location", b"/x\rSet-Cookie: a=b"),
            (b"Location", b"/x\0"),
            (b"X-A\r\nSet-Cookie", b"a=b"),
            (b"X A", b"b"),
            (b"", b"b"),
        ] {
            let out = written(name, value);
            assert!(!out.contains("Set-Cookie"), "{out:?}");
            assert!(!out.contains("/x"), "{out:?}");
        }
        let out = written(b"Location", b"/x\t%0D%0A");
        assert!(out.contains("\r\nLocation: /x\t%0D%0A\r\n"), "{out:?}");
    }

    /// Takes at most 7 bytes per write, as a socket whose buffer is full.
    struct Trickle(Vec<u8>, usize);

    impl std::io::Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let n = buf.len().min(7);
            self.0.extend_from_slice(&buf[..n]);
            self.1 += 1;
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_body_in_memory_is_written_whole_through_short_writes() {
        let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let mut out = Trickle(Vec::new(), 0);
        Response::new(StatusCode(200), vec![], body.clone())
            .raw_print(&mut out, HTTPVersion(1, 1), false, false)
            .unwrap();
        let end = out.0.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let head = String::from_utf8_lossy(&out.0[..end]);
        assert!(head.contains("\r\nContent-Length: 100000\r\n"), "{head}");
        assert!(!head.contains("Transfer-Encoding"), "{head}");
        assert_eq!(&out.0[end..], &body[..]);
        assert!(out.1 > 100_000 / 7);

        // The head only, for HEAD.
        let mut out = Trickle(Vec::new(), 0);
        Response::new(StatusCode(200), vec![], body)
            .raw_print(&mut out, HTTPVersion(1, 1), true, false)
            .unwrap();
        let text = String::from_utf8(out.0).unwrap();
        assert!(
            text.ends_with("\r\nContent-Length: 100000\r\n\r\n"),
            "{text}"
        );
    }

    /// Takes `.1` bytes, then times out, as a socket whose client stopped
    /// reading.
    struct Stalls(Vec<u8>, usize);

    impl std::io::Write for Stalls {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.1);
            if n == 0 {
                return Err(std::io::ErrorKind::TimedOut.into());
            }
            self.0.extend_from_slice(&buf[..n]);
            self.1 -= n;
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_response_stopped_part_way_goes_on_where_it_stopped() {
        let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let mut whole = Vec::new();
        Response::new(StatusCode(200), vec![], body.clone())
            .raw_print(&mut whole, HTTPVersion(1, 1), false, false)
            .unwrap();
        // Stopped in the head, and in the body.
        for first in [10, 60_000] {
            let mut out = Stalls(Vec::new(), first);
            let (e, mut rest) = Response::new(StatusCode(200), vec![], body.clone())
                .print(&mut out, HTTPVersion(1, 1), false, false)
                .err()
                .unwrap();
            assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
            assert_eq!(rest.left(), whole.len() - first);
            assert_eq!(rest.size(), whole.len());
            let mut then = Trickle(Vec::new(), 0);
            rest.write_to(&mut then).unwrap();
            assert_eq!(rest.left(), 0);
            out.0.extend_from_slice(&then.0);
            // The same bytes as written at once, but for the Date header's
            // second, which may have changed.
            assert_eq!(out.0.len(), whole.len());
            assert_eq!(out.0[out.0.len() - body.len()..], body[..]);
        }
    }

    #[test]
    fn a_closing_response_says_so_and_headers_the_listener_owns_are_ignored() {
        let mut out = Vec::new();
        let mut response = Response::from_string("x");
        for (name, value) in [
            ("Connection", "keep-alive"),
            ("Transfer-Encoding", "chunked"),
            ("Content-Length", "99"),
            ("Content-Type", "application/json"),
        ] {
            response.add_header(Header::from_bytes(name, value).unwrap());
        }
        response
            .raw_print(&mut out, HTTPVersion(1, 1), false, true)
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("\r\nConnection: close\r\n"), "{text}");
        assert!(text.contains("\r\nContent-Length: 1\r\n"), "{text}");
        assert!(
            text.contains("\r\nContent-Type: application/json\r\n"),
            "{text}"
        );
        for gone in ["keep-alive", "chunked", "99", "text/plain"] {
            assert!(!text.contains(gone), "{text}");
        }
    }

    #[test]
    fn no_body_and_no_length_for_1xx_204_and_304() {
        for status in [100, 204, 304] {
            let mut out = Vec::new();
            Response::new(StatusCode(status), vec![], b"ignored".to_vec())
                .raw_print(&mut out, HTTPVersion(1, 1), false, false)
                .unwrap();
            let text = String::from_utf8(out).unwrap();
            assert!(text.ends_with("\r\n\r\n"), "{text}");
            assert!(!text.contains("Content-Length"), "{text}");
            assert!(!text.contains("ignored"), "{text}");
        }
    }
}
