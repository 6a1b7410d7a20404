//! One connection's requests, read on its own thread: strict request heads
//! (RFC 9112 §2–5), the body framing they announce, and the refusal of
//! what can't be read.
//!
//! Lines end with CRLF only (a bare LF or CR is refused at once, not waited
//! on); a control byte (NUL, CR, LF, ESC, DEL…) or a non-ASCII byte in the
//! request line or a header is refused; the request line is exactly
//! `method SP target SP HTTP/1.x` with a token method; header names are
//! tokens right before the colon; obsolete line folding is refused; up to 8
//! empty lines before a request line are ignored; lines are limited to
//! 16 KiB and a request to 100 header fields (431). Another HTTP version
//! (`HTTP/2.0`, the HTTP/2 preface) is a 505; a later `HTTP/1.x` is served
//! as HTTP/1.1. Every refusal is answered with what [`Handler::refused`]
//! gives and `Connection: close`, and the connection is closed: nobody can
//! tell where the next request would start.

use ascii::AsciiString;

use std::io::Error as IoError;
use std::io::{BufRead, BufReader, ErrorKind};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::common::{HTTPVersion, Header, HeaderField, Method, is_tchar};
use crate::socket::Socket;
use crate::util::RefinedTcpStream;
use crate::util::{SequentialReader, SequentialReaderBuilder, SequentialWriterBuilder};
use crate::{Handler, Rejected, Request};

/// A request line or header line is at most this long.
const MAX_LINE: usize = 16 * 1024;
/// A request has at most this many header fields.
const MAX_HEADERS: usize = 100;
/// Empty lines ignored before a request line (RFC 9112 §2.2).
const MAX_EMPTY_LINES: usize = 8;

/// The requests of one connection, read in turn (an iterator: `None` once
/// no more will come).
pub(crate) struct ClientConnection {
    // address of the client
    remote_addr: Option<SocketAddr>,

    // the socket, for its phase deadlines and close flag
    socket: Arc<Socket>,

    // sequence of Readers to the stream, so that the data is not read in
    //  the wrong order
    source: SequentialReaderBuilder<BufReader<RefinedTcpStream>>,

    // sequence of Writers to the stream, to avoid writing response #2 before
    //  response #1
    sink: SequentialWriterBuilder<RefinedTcpStream>,

    // Reader to read the next header from
    next_header_source: SequentialReader<BufReader<RefinedTcpStream>>,

    // set to true if we know that the previous request is the last one
    no_more_requests: bool,

    // requests read so far on this connection
    served: usize,

    // bytes of the current request head received so far
    head_bytes: usize,

    // the connection ends with input that may not have been read (a refused
    // head, an unread body): see `Socket::linger`
    linger: bool,

    // writes the answer to a refused request
    handler: Arc<dyn Handler>,

    // when the current request's first byte arrived
    head_started: Instant,

    // the current request's line, once read and well-formed
    request_line: Option<String>,
}

/// Why no request was read.
#[derive(Debug)]
enum ReadError {
    /// Answer this status and message, then close.
    Refuse(u16, &'static str),
    /// The client left, or sent nothing in time: close without an answer.
    Gone,
}

impl From<IoError> for ReadError {
    fn from(_: IoError) -> ReadError {
        ReadError::Gone
    }
}

impl ClientConnection {
    /// Creates a new `ClientConnection` over an accepted socket.
    pub(crate) fn new(
        socket: Arc<Socket>,
        remote_addr: Option<SocketAddr>,
        handler: Arc<dyn Handler>,
    ) -> ClientConnection {
        let mut source = SequentialReaderBuilder::new(BufReader::with_capacity(
            1024,
            RefinedTcpStream::new(Arc::clone(&socket)),
        ));
        let first_header = source.next().unwrap();

        ClientConnection {
            source,
            // Every answer leaves in one `writev` of its head and body: the
            // writer needs no buffer.
            sink: SequentialWriterBuilder::new(RefinedTcpStream::new(Arc::clone(&socket))),
            socket,
            remote_addr,
            next_header_source: first_header,
            no_more_requests: false,
            served: 0,
            head_bytes: 0,
            linger: false,
            handler,
            head_started: Instant::now(),
            request_line: None,
        }
    }

    /// Wait until the last answer on the connection has been
    /// written (it may be written by another thread).
    pub(crate) fn wait_answers(&mut self) {
        if let Some(mut last) = self.sink.next() {
            last.wait_turn();
        }
    }

    /// Whether the connection ended with input the client may
    /// still be sending.
    pub(crate) fn lingers(&self) -> bool {
        self.linger
    }

    /// Reads one line of the head up to CRLF. Lines end with
    /// CRLF only (a bare LF or CR is refused, not taken as a line end), and
    /// no control byte other than HTAB, and no non-ASCII byte, is accepted:
    /// such bytes in a path would otherwise reach response headers (the
    /// path is copied into `Location` and `Next-Page`). The line is taken
    /// from the read buffer in runs, not a byte at a time.
    fn read_line(&mut self) -> Result<String, ReadError> {
        let mut line = Vec::new();
        loop {
            let buf = match self.next_header_source.fill_buf() {
                Ok(buf) => buf,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::TimedOut && self.head_bytes > 0 => {
                    return Err(ReadError::Refuse(
                        408,
                        "The request head was not received in time.",
                    ));
                }
                Err(_) => return Err(ReadError::Gone),
            };
            if buf.is_empty() {
                return Err(ReadError::Gone);
            }
            if self.head_bytes == 0 {
                self.head_started = Instant::now();
            }
            // Printable ASCII up to the first byte that is not.
            let run = buf
                .iter()
                .position(|&b| !(0x20..0x7f).contains(&b))
                .unwrap_or(buf.len());
            let next = buf.get(run).copied();
            if line.len() + run + usize::from(next == Some(b'\t')) > MAX_LINE {
                return Err(ReadError::Refuse(431, "Request header fields too large."));
            }
            line.extend_from_slice(&buf[..run]);
            let used = run + usize::from(next.is_some());
            self.next_header_source.consume(used);
            self.head_bytes += used;
            match next {
                None => {}
                Some(b'\t') => line.push(b'\t'),
                Some(b'\r') => {
                    let lf_ok = loop {
                        match self.next_header_source.fill_buf() {
                            Ok(buf) => break buf.first() == Some(&b'\n'),
                            Err(e) if e.kind() == ErrorKind::Interrupted => {}
                            Err(_) => break false,
                        }
                    };
                    if !lf_ok {
                        return Err(ReadError::Refuse(
                            400,
                            "Malformed HTTP request: a CR must be followed by LF.",
                        ));
                    }
                    self.next_header_source.consume(1);
                    self.head_bytes += 1;
                    // Only ASCII bytes were kept.
                    return String::from_utf8(line).map_err(|_| ReadError::Gone);
                }
                Some(b'\n') => {
                    return Err(ReadError::Refuse(
                        400,
                        "Malformed HTTP request: lines must end with CRLF, not a bare LF.",
                    ));
                }
                Some(b) if b < 0x80 => {
                    return Err(ReadError::Refuse(
                        400,
                        "Malformed HTTP request: control characters are not allowed in the request line or headers.",
                    ));
                }
                Some(_) => {
                    return Err(ReadError::Refuse(
                        400,
                        "The request line and headers must be ASCII (percent-encode other bytes).",
                    ));
                }
            }
        }
    }

    /// Reads a request from the stream.
    /// Blocks until the header has been read.
    fn read(&mut self) -> Result<Request, ReadError> {
        // Wait until the previous request's body is released,
        // then read on only if its response left the connection open (a
        // body not read to its end is never parsed as a request).
        if !self.next_header_source.wait_turn() || self.socket.closing() {
            return Err(ReadError::Gone);
        }
        if self.served > 0 {
            self.socket.start_idle();
        }
        self.head_bytes = 0;
        self.request_line = None;

        let line = {
            let mut empty = 0;
            loop {
                let line = self.read_line()?;
                if !line.is_empty() {
                    break line;
                }
                empty += 1;
                if empty > MAX_EMPTY_LINES {
                    return Err(ReadError::Refuse(400, "Malformed HTTP request line."));
                }
            }
        };
        let (method, path, version) = parse_request_line(&line)?;
        self.request_line = Some(line);

        let mut headers = Vec::new();
        loop {
            let line = self.read_line()?;
            if line.is_empty() {
                break;
            }
            if headers.len() >= MAX_HEADERS {
                return Err(ReadError::Refuse(431, "Request header fields too large."));
            }
            headers.push(parse_header(&line)?);
        }
        self.served += 1;

        // The writer for the request waits for the previous answer to be written (the previous request may still
        // be served by a worker while its body has been given back), so a
        // connection has one request in service at a time, and one whose
        // answer closed it reads no further.
        let mut writer = self.sink.next().unwrap();
        writer.wait_turn();
        if self.socket.closing() || !self.socket.start_body() {
            return Err(ReadError::Gone);
        }

        // follow-up for next potential request
        let mut data_source = self.source.next().unwrap();
        std::mem::swap(&mut self.next_header_source, &mut data_source);

        // building the next reader
        crate::request::new_request(
            method,
            path,
            version,
            headers,
            self.remote_addr,
            data_source,
            writer,
            Arc::clone(&self.socket),
        )
        .map_err(|e| {
            use crate::request::RequestCreationError as E;
            match e {
                E::CreationIoError(e) if e.kind() == ErrorKind::TimedOut => {
                    ReadError::Refuse(408, "The request body was not received in time.")
                }
                E::CreationIoError(_) => ReadError::Gone,
                E::Framing(message) => ReadError::Refuse(400, message),
                E::ExpectationFailed => {
                    ReadError::Refuse(417, "Only `Expect: 100-continue` is supported.")
                }
            }
        })
    }
}

impl Iterator for ClientConnection {
    type Item = Request;

    /// Blocks until the next Request is available.
    /// Returns None when no new Requests will come from the client.
    fn next(&mut self) -> Option<Request> {
        // the client sent a "connection: close" header in this previous request
        //  or is using HTTP 1.0, meaning that no new request will come
        if self.no_more_requests {
            return None;
        }

        match self.read() {
            Ok(rq) => {
                self.no_more_requests = !rq.keep_alive();
                Some(rq)
            }
            Err(ReadError::Refuse(status, reason)) => {
                // The handler's answer, then close.
                self.no_more_requests = true;
                self.linger = true;
                self.socket.set_close();
                let mut parts = self.request_line.as_deref().unwrap_or("").split(' ');
                let refused = Rejected {
                    status: crate::StatusCode(status),
                    reason,
                    method: parts.next().filter(|m| !m.is_empty()),
                    target: parts.next(),
                    remote_addr: self.remote_addr.as_ref(),
                    elapsed: self.head_started.elapsed(),
                };
                let answer = self.handler.refused(&refused);
                self.socket.start_send(None);
                let writer = self.sink.next().unwrap();
                let _ = answer.raw_print(writer, HTTPVersion(1, 1), false, true);
                None
            }
            Err(ReadError::Gone) => {
                self.no_more_requests = true;
                // A response that closed the connection with input left
                // unread (a body not read to its end).
                self.linger = self.socket.closing();
                None
            }
        }
    }
}

/// Parses a request line strictly: `method SP target SP
/// HTTP/1.x`, the method a token, single spaces. Another HTTP version
/// (`HTTP/2.0`, the preface of HTTP/2 sent in clear) is a 505.
fn parse_request_line(line: &str) -> Result<(Method, String, HTTPVersion), ReadError> {
    let malformed = ReadError::Refuse(400, "Malformed HTTP request line.");
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed);
    };
    if method.is_empty()
        || !method.bytes().all(is_tchar)
        || target.is_empty()
        || !target.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(malformed);
    }
    let version = match version.as_bytes() {
        b"HTTP/1.0" => HTTPVersion(1, 0),
        // A later HTTP/1.x is served as HTTP/1.1 (RFC 9110 §2.5).
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', minor] if minor.is_ascii_digit() => {
            HTTPVersion(1, 1)
        }
        _ if version.strip_prefix("HTTP/").is_some_and(|n| {
            !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        }) =>
        {
            return Err(ReadError::Refuse(
                505,
                "This server only supports HTTP/1.0 and HTTP/1.1.",
            ));
        }
        _ => return Err(malformed),
    };
    let method = method.parse().map_err(|_| malformed)?;
    Ok((method, target.to_owned(), version))
}

/// `name: value`, the name a token right before the colon
/// (no whitespace, RFC 9112 §5.1), the value without surrounding spaces. A
/// line starting with whitespace (obsolete line folding) is refused.
fn parse_header(line: &str) -> Result<Header, ReadError> {
    let malformed = || ReadError::Refuse(400, "Malformed HTTP header.");
    let (name, value) = line.split_once(':').ok_or_else(malformed)?;
    let field: HeaderField = name.parse().map_err(|_| malformed())?;
    let value =
        AsciiString::from_ascii(value.trim_matches([' ', '\t'])).map_err(|_| malformed())?;
    Ok(Header { field, value })
}

#[cfg(test)]
mod test {
    use super::{ClientConnection, ReadError, parse_header, parse_request_line};

    #[test]
    fn test_parse_request_line() {
        let (method, path, ver) = parse_request_line("GET /hello HTTP/1.1").unwrap();

        assert!(method == crate::Method::Get);
        assert!(path == "/hello");
        assert!(ver == crate::common::HTTPVersion(1, 1));
        let (_, _, ver) = parse_request_line("GET / HTTP/1.0").unwrap();
        assert!(ver == crate::common::HTTPVersion(1, 0));
        // A later HTTP/1.x is served as HTTP/1.1.
        let (_, _, ver) = parse_request_line("GET / HTTP/1.9").unwrap();
        assert!(ver == crate::common::HTTPVersion(1, 1));

        for bad in [
            "GET /hello",
            "qsd qsd qsd",
            "GET  /hello HTTP/1.1",
            "GET /hello HTTP/1.1 ",
            " GET /hello HTTP/1.1",
            "GET /he\tllo HTTP/1.1",
            "G(T /hello HTTP/1.1",
            "GET /hello http/1.1",
            "GET /hello HTTP/1.1x",
            "GET /hello HTTP/1.a",
        ] {
            assert!(
                matches!(parse_request_line(bad), Err(ReadError::Refuse(400, _))),
                "{}",
                "{bad:?}"
            );
        }
        for other in [
            "PRI * HTTP/2.0",
            "GET / HTTP/2",
            "GET / HTTP/0.9",
            "GET / HTTP/3.0",
        ] {
            assert!(
                matches!(parse_request_line(other), Err(ReadError::Refuse(505, _))),
                "{}",
                "{other:?}"
            );
        }
    }

    #[test]
    fn test_parse_header() {
        let h = parse_header("Content-Type:  text/html \t").unwrap();
        assert!(h.field.equiv("content-type"));
        assert_eq!(h.value.as_str(), "text/html");
        assert_eq!(parse_header("X-Empty:").unwrap().value.as_str(), "");
        for bad in [
            "No colon",
            ": no name",
            "Name : space before colon",
            " Folded: line",
            "X(y): z",
        ] {
            assert!(parse_header(bad).is_err(), "{}", "{bad:?}");
        }
    }

    /// Which connections end with a lingering read (`Socket::linger`): those
    /// whose input may not all have been read (a refused head, a body not
    /// read to its end); not one whose last request asked to close, nor one
    /// whose client closed its side. A lingering end keeps the connection's
    /// thread and descriptor up to 2 s more.
    #[test]
    fn only_a_connection_with_input_left_unread_lingers() {
        use crate::socket::tests::{shared, socket};
        use crate::socket::{Limits, STALLED};
        use crate::unsent::Budget;
        use std::io::Write;
        use std::net::Shutdown;
        use std::sync::Arc;
        use std::time::Duration;

        struct Unused;
        impl crate::Handler for Unused {
            fn handle(&self, _: crate::Request) {}
        }
        let limits = Limits {
            head_timeout: Duration::from_secs(5),
            body_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(5),
            ..Limits::default()
        };
        for (sent, client_closes, lingers) in [
            (
                &b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n"[..],
                false,
                false,
            ),
            (b"GET / HTTP/1.1\r\n\r\n", true, false),
            (b"GET /\x01 HTTP/1.1\r\n\r\n", false, true),
            (
                b"PUT / HTTP/1.1\r\nContent-Length: 5000\r\n\r\nnot all",
                false,
                true,
            ),
        ] {
            let (s, mut peer) = socket(&limits, &shared(Budget::new(0, STALLED)));
            let mut client = ClientConnection::new(s, None, Arc::new(Unused));
            peer.write_all(sent).unwrap();
            if client_closes {
                peer.shutdown(Shutdown::Write).unwrap();
            }
            // Each request answered without its body being read.
            for rq in client.by_ref() {
                rq.respond(crate::Response::empty(200)).unwrap();
            }
            assert_eq!(
                client.lingers(),
                lingers,
                "{:?}",
                String::from_utf8_lossy(sent)
            );
        }
    }
}
