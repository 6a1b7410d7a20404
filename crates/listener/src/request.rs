//! A request as the handler sees it: its head, its body (read through the
//! framing it announced), and the way its answer is written.

use std::fmt;
use std::io::{self, Cursor, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::response::Rest;
use crate::socket::Socket;
use crate::unsent::Ticket;
use crate::util::{ChunkedDecoder, EqualReader};
use crate::{HTTPVersion, Header, Method, Response, StatusCode};

/// A request, its head read: what a [`crate::Handler`] is given.
///
/// The body is read through [`Request::as_reader`]. Answering it takes the
/// request ([`Request::respond`], [`Request::respond_or_hand_over`]); one
/// dropped unanswered is answered an empty 500. A request can be sent to
/// another thread and answered there.
///
/// A connection has one request in service at a time: its next request is
/// read once this one's body is released (read whole) and served once this
/// one's answer is out. A body not read to its end closes the connection
/// after the answer (what is left of it is never parsed as a request).
pub struct Request {
    /// Where the body is read from.
    body: Option<Body>,
    /// Where the answer goes; None once answered.
    writer: Option<Box<dyn Write + Send + 'static>>,
    remote_addr: Option<SocketAddr>,
    method: Method,
    path: String,
    http_version: HTTPVersion,
    headers: Vec<Header>,
    body_length: Option<usize>,
    /// A `100 Continue` is due when the body is first read.
    must_send_continue: bool,
    /// The connection it came on.
    socket: Arc<Socket>,
    /// The client keeps the connection open after this request.
    keep_alive: bool,
    /// The server ends the connection after the response.
    close: bool,
    /// A shorter limit for writing the response.
    send_limit: Option<Duration>,
}

/// A request body that knows whether it was read to its end.
struct Body {
    reader: Box<dyn Read + Send + 'static>,
    finished: bool,
}

impl Read for Body {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.finished || buf.is_empty() {
            return Ok(0);
        }
        let n = self.reader.read(buf)?;
        if n == 0 {
            self.finished = true;
        }
        Ok(n)
    }
}

/// Why a request could not be made from a head that was read.
#[derive(Debug)]
pub(crate) enum RequestCreationError {
    /// An `Expect` other than `100-continue` (417).
    ExpectationFailed,
    /// The body's framing is invalid or ambiguous (RFC 9112 §6.3): the
    /// request is refused with a 400 and the connection closed.
    Framing(&'static str),
    /// Reading a small body failed.
    CreationIoError(io::Error),
}

impl From<io::Error> for RequestCreationError {
    fn from(err: io::Error) -> RequestCreationError {
        RequestCreationError::CreationIoError(err)
    }
}

/// How the body is delimited, per RFC 9112 §6.3. A
/// `Transfer-Encoding` must be exactly `chunked` and comes without
/// `Content-Length` in an HTTP/1.1 request; every `Content-Length` value
/// must be the same run of digits (a number too large for memory is kept as
/// `usize::MAX`, for the application to refuse as too large). Anything else
/// could be read differently by a proxy in front, so it is refused.
fn framing(
    headers: &[Header],
    version: &HTTPVersion,
) -> Result<(bool, Option<usize>), RequestCreationError> {
    use RequestCreationError::Framing;
    let mut codings = Vec::new();
    let mut transfer_encoding = false;
    let mut length: Option<&str> = None;
    for h in headers {
        if h.field.equiv("Transfer-Encoding") {
            transfer_encoding = true;
            codings.extend(
                h.value
                    .as_str()
                    .split(',')
                    .map(|c| c.trim_matches([' ', '\t']))
                    .filter(|c| !c.is_empty()),
            );
        } else if h.field.equiv("Content-Length") {
            for v in h.value.as_str().split(',') {
                let v = v.trim_matches([' ', '\t']);
                if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(Framing("Content-Length must be a decimal number."));
                }
                let v = v.trim_start_matches('0');
                match length {
                    Some(l) if l != v => {
                        return Err(Framing("Conflicting Content-Length values."));
                    }
                    _ => length = Some(v),
                }
            }
        }
    }
    if transfer_encoding {
        if length.is_some() {
            return Err(Framing(
                "Content-Length and Transfer-Encoding must not be sent together.",
            ));
        }
        if *version < HTTPVersion(1, 1) {
            return Err(Framing("Transfer-Encoding needs HTTP/1.1."));
        }
        if codings.len() != 1 || !codings[0].eq_ignore_ascii_case("chunked") {
            return Err(Framing(
                "Unsupported transfer coding: only `chunked` is accepted.",
            ));
        }
        return Ok((true, None));
    }
    let length = length.map(|v| {
        if v.is_empty() {
            0
        } else {
            v.parse::<usize>().unwrap_or(usize::MAX)
        }
    });
    Ok((false, length))
}

/// Makes the request of a head just read: `source` reads what follows the
/// head on the connection (the body, framed as the head says), `writer`
/// writes the answer.
#[allow(clippy::too_many_arguments)]
pub(crate) fn new_request<R, W>(
    method: Method,
    path: String,
    version: HTTPVersion,
    headers: Vec<Header>,
    remote_addr: Option<SocketAddr>,
    mut source: R,
    writer: W,
    socket: Arc<Socket>,
) -> Result<Request, RequestCreationError>
where
    R: Read + Send + 'static,
    W: Write + Send + 'static,
{
    let (chunked, content_length) = framing(&headers, &version)?;

    let expects_continue = match headers
        .iter()
        .find(|h| h.field.equiv("Expect"))
        .map(|h| h.value.as_str())
    {
        None => false,
        Some(v) if v.eq_ignore_ascii_case("100-continue") => true,
        _ => return Err(RequestCreationError::ExpectationFailed),
    };

    let keep_alive = {
        let connection = headers
            .iter()
            .filter(|h| h.field.equiv("Connection"))
            .flat_map(|h| h.value.as_str().split(','))
            .map(|t| t.trim_matches([' ', '\t']).to_ascii_lowercase())
            .collect::<Vec<_>>();
        if connection.iter().any(|t| t == "close") {
            false
        } else {
            version >= HTTPVersion(1, 1) || connection.iter().any(|t| t == "keep-alive")
        }
    };

    let reader: Box<dyn Read + Send + 'static> = match content_length {
        _ if chunked => Box::new(ChunkedDecoder::new(source)),
        None | Some(0) => Box::new(io::empty()),
        // A small body is read at once (it is usually in the buffer already).
        Some(n) if n <= 1024 && !expects_continue => {
            let mut buffer = vec![0; n];
            source.read_exact(&mut buffer)?;
            Box::new(Cursor::new(buffer))
        }
        Some(n) => Box::new(EqualReader::new(source, n)),
    };
    let finished = !chunked && content_length.unwrap_or(0) == 0;

    Ok(Request {
        body: Some(Body { reader, finished }),
        writer: Some(Box::new(writer)),
        remote_addr,
        method,
        path,
        http_version: version,
        headers,
        body_length: content_length,
        must_send_continue: expects_continue,
        socket,
        keep_alive,
        close: false,
        send_limit: None,
    })
}

impl Request {
    /// The method (`GET`, `POST`…).
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The request target: the path and query.
    pub fn url(&self) -> &str {
        &self.path
    }

    /// The header fields, in the order received.
    pub fn headers(&self) -> &[Header] {
        &self.headers
    }

    /// The HTTP version.
    pub fn http_version(&self) -> &HTTPVersion {
        &self.http_version
    }

    /// The body's announced length (`Content-Length`); None when chunked or
    /// absent. A length too large for memory is `usize::MAX`.
    pub fn body_length(&self) -> Option<usize> {
        self.body_length
    }

    /// The peer's address: always for TCP, never for a unix socket. Behind a
    /// proxy, the proxy's.
    pub fn remote_addr(&self) -> Option<&SocketAddr> {
        self.remote_addr.as_ref()
    }

    /// The body. The first read sends `100 Continue` to a client that
    /// asked for it.
    pub fn as_reader(&mut self) -> &mut dyn Read {
        if self.must_send_continue {
            self.must_send_continue = false;
            self.socket.start_send(None);
            if let Some(writer) = self.writer.as_mut() {
                let _ = Response::empty(StatusCode(100)).raw_print(
                    writer.by_ref(),
                    self.http_version.clone(),
                    true,
                    false,
                );
                let _ = writer.flush();
            }
        }
        self.body
            .as_mut()
            .expect("the body is there until answered")
    }

    /// Whether the body has been read to its end (always true without a
    /// body). When it has not, the response says `Connection: close` and
    /// the connection ends after it.
    pub fn body_finished(&self) -> bool {
        self.body.as_ref().is_none_or(|b| b.finished)
    }

    /// Once the body has been read to its end, give the connection's input
    /// back, so that its thread can read the next request while this one is
    /// answered elsewhere. Does nothing to a body not read to its end.
    pub fn release_body(&mut self) {
        if self.body_finished() {
            self.body = Some(Body {
                reader: Box::new(io::empty()),
                finished: true,
            });
        }
    }

    /// End the connection after the response (it says `Connection: close`).
    pub fn set_close(&mut self) {
        self.close = true;
    }

    /// The response must be written within `limit` (instead of the
    /// listener's send limit), or the connection is closed.
    pub fn set_send_limit(&mut self, limit: Duration) {
        self.send_limit = Some(limit);
    }

    /// Whether the client keeps the connection open after this request
    /// (HTTP/1.1 without `Connection: close`, or HTTP/1.0 with
    /// `Connection: keep-alive`).
    pub fn keep_alive(&self) -> bool {
        self.keep_alive
    }

    /// Writes the answer, within the send limit; a client that does not
    /// take it by then loses the connection.
    pub fn respond(mut self, response: Response) -> io::Result<()> {
        self.respond_impl(response)
    }

    /// Writes the answer within the request's send limit and, if the client
    /// has not taken all of it by then, gives back an [`Unsent`] (what is
    /// left) for another thread to finish, instead of closing the
    /// connection. The answer then counts in
    /// [`Limits::max_unsent_bytes`](crate::Limits::max_unsent_bytes) until
    /// it is out; when it can't be counted, the connection is closed instead.
    pub fn respond_or_hand_over(mut self, response: Response) -> Result<io::Result<()>, Unsent> {
        let mut writer = self.take_writer();
        match self.print(&mut writer, response) {
            Err((e, Some(rest))) if e.kind() == ErrorKind::TimedOut => {
                match self.socket.budget().admit(&self.socket, rest.size()) {
                    Some(ticket) => Err(Unsent {
                        writer,
                        rest,
                        ticket,
                    }),
                    None => Ok(finished(&self.socket, Err(e))),
                }
            }
            written => Ok(finished(&self.socket, written.map_err(|(e, _)| e))),
        }
    }

    fn take_writer(&mut self) -> Box<dyn Write + Send + 'static> {
        self.writer.take().expect("a request is answered once")
    }

    fn respond_impl(&mut self, response: Response) -> io::Result<()> {
        let mut writer = self.take_writer();
        let written = self.print(&mut writer, response).map_err(|(e, _)| e);
        finished(&self.socket, written)
    }

    /// Writes a response with `writer`.
    fn print(
        &mut self,
        writer: &mut Box<dyn Write + Send + 'static>,
        response: Response,
    ) -> Result<(), (io::Error, Option<Rest>)> {
        // What is left of an unread body would be parsed as the next
        // request (request smuggling): close instead.
        let close = self.close || !self.body_finished();
        if close {
            self.socket.set_close();
        }
        self.socket.start_send(self.send_limit);
        response
            .print(
                writer.by_ref(),
                self.http_version.clone(),
                self.method == Method::Head,
                close || !self.keep_alive,
            )
            .map_err(|(e, rest)| (e, Some(rest)))
            .and_then(|()| writer.flush().map_err(|e| (e, None)))
    }
}

/// The end of writing a response. One not written whole leaves the
/// connection in the middle of an answer: it ends there, at once (its
/// thread may be waiting for a next request).
fn finished(socket: &Socket, written: io::Result<()>) -> io::Result<()> {
    if written.is_err() {
        socket.abort();
    }
    socket.answered();
    // A client that left is not an error of the response.
    written.or_else(|err| match err.kind() {
        ErrorKind::BrokenPipe
        | ErrorKind::ConnectionAborted
        | ErrorKind::ConnectionRefused
        | ErrorKind::ConnectionReset => Ok(()),
        _ => Err(err),
    })
}

/// What is left of a response the client did not take within its request's
/// send limit (see [`Request::respond_or_hand_over`]).
pub struct Unsent {
    writer: Box<dyn Write + Send + 'static>,
    rest: Rest,
    /// Counts the answer's bytes until it is dropped (after `rest`).
    ticket: Ticket,
}

/// The threads that finish answers: one per connection at most (its next
/// request waits for this answer), little stack.
const ANSWER_STACK: usize = 64 * 1024;

static NO_THREAD: crate::Throttle = crate::Throttle::new(Duration::from_secs(10));

type Slot<F> = std::sync::Mutex<Option<(Unsent, F)>>;

fn take<F>(slot: &Slot<F>) -> Option<(Unsent, F)> {
    slot.lock().unwrap_or_else(|e| e.into_inner()).take()
}

impl Unsent {
    /// Bytes still to write.
    pub fn left(&self) -> usize {
        self.rest.left()
    }

    /// Writes the rest within the listener's send limit, and the time each
    /// byte taken earns (see [`Limits::min_send_rate`](crate::Limits)); a
    /// client that does not take it in time loses the connection.
    pub fn finish(mut self) -> io::Result<()> {
        let socket = Arc::clone(self.ticket.socket());
        // Only what the client takes from now on earns time: what went out
        // before may only be in the kernel's buffers (all of it, for a
        // client that reads nothing).
        socket.start_send(None);
        let written = self
            .rest
            .write_to(self.writer.by_ref())
            .and_then(|()| self.writer.flush());
        finished(&socket, written)
    }

    /// [`Unsent::finish`] on a thread of its own (named `answer`), then
    /// `done`. When no thread can be started, the connection is closed
    /// instead (and `done` called at once).
    pub fn finish_elsewhere<F: FnOnce() + Send + 'static>(self, done: F) {
        // Shared with the thread only so that it can be taken back if the
        // thread can't start.
        let slot: Arc<Slot<F>> = Arc::new(std::sync::Mutex::new(Some((self, done))));
        let theirs = Arc::clone(&slot);
        let spawned = std::thread::Builder::new()
            .name("answer".into())
            .stack_size(ANSWER_STACK)
            .spawn(move || {
                if let Some((unsent, done)) = take(&theirs) {
                    let _ = unsent.finish();
                    done();
                }
            });
        if let Err(e) = spawned {
            if let Some((unsent, done)) = take(&slot) {
                NO_THREAD
                    .event(|n| log::error!("{n} slow answer(s) cut: cannot start a thread: {e}"));
                let socket = Arc::clone(unsent.ticket.socket());
                drop(unsent);
                let _ = finished(&socket, Err(io::ErrorKind::Other.into()));
                done();
            }
        }
    }
}

impl fmt::Debug for Unsent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Unsent({} bytes left)", self.left())
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "Request({} {} from {:?})",
            self.method.as_str(),
            self.path,
            self.remote_addr
        )
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        if self.writer.is_some() {
            let _ = self.respond_impl(Response::empty(500));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Request;

    #[test]
    fn must_be_send() {
        fn f<T: Send>() {}
        f::<Request>();
    }
}
