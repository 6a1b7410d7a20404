use std::io::Error as IoError;
use std::io::{self, Cursor, ErrorKind, Read, Write};

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::response::Rest;
use crate::socket::Socket;
use crate::util::{ChunkedDecoder, EqualReader};
use crate::{HTTPVersion, Header, Method, Response, StatusCode};

/// Represents an HTTP request made by a client.
///
/// A `Request` object is what is produced by the server, and is your what
/// your code must analyse and answer.
///
/// This object implements the `Send` trait, therefore you can dispatch your requests to
/// worker threads.
///
/// # Pipelining
///
/// If a client sends multiple requests in a row (without waiting for the response), then you will
/// get multiple `Request` objects simultaneously. This is called *requests pipelining*.
/// Tiny-http automatically reorders the responses so that you don't need to worry about the order
/// in which you call `respond` or `into_writer`.
///
/// This mechanic is disabled if:
///
///  - The body of a request is large enough (handling requires pipelining requires storing the
///    body of the request in a buffer ; if the body is too big, tiny-http will avoid doing that)
///  - A request sends a `Expect: 100-continue` header (which means that the client waits to
///    know whether its body will be processed before sending it)
///  - A request sends a `Connection: close` header, which indicates that this is the last
///    request that will be received on this connection
///
/// Syncto patch: `Connection: upgrade` is not special (there is no raw-socket hand-over), and
/// a connection whose request body was not read to its end is closed after the response.
///
/// # Automatic cleanup
///
/// If a `Request` object is destroyed without `into_writer` or `respond` being called,
/// an empty response with a 500 status code (internal server error) will automatically be
/// sent back to the client.
/// This means that if your code fails during the handling of a request, this "internal server
/// error" response will automatically be sent during the stack unwinding.
///
/// # Testing
///
/// If you want to build fake requests to test your server, use [`TestRequest`](crate::test::TestRequest).
pub struct Request {
    // where to read the body from
    data_reader: Option<Body>,

    // if this writer is empty, then the request has been answered
    response_writer: Option<Box<dyn Write + Send + 'static>>,

    remote_addr: Option<SocketAddr>,

    // true if HTTPS, false if HTTP
    secure: bool,

    method: Method,

    path: String,

    http_version: HTTPVersion,

    headers: Vec<Header>,

    body_length: Option<usize>,

    // true if a `100 Continue` response must be sent when `as_reader()` is called
    must_send_continue: bool,

    // Syncto patch: the connection it came on (None for a TestRequest).
    socket: Option<Arc<Socket>>,

    // Syncto patch: the client keeps the connection open after this request.
    keep_alive: bool,

    // Syncto patch: the server ends the connection after the response.
    close: bool,

    // Syncto patch: a shorter limit for writing the response.
    send_limit: Option<std::time::Duration>,
}

/// Syncto patch: a request body that knows whether it was read to its end.
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

/// Error that can happen when building a `Request` object.
#[derive(Debug)]
pub enum RequestCreationError {
    /// The client sent an `Expect` header that was not recognized by tiny-http.
    ExpectationFailed,

    /// Syncto patch: the body's framing is invalid or ambiguous (RFC 9112
    /// §6.3): the request is refused with a 400 and the connection closed.
    Framing(&'static str),

    /// Error while reading data from the socket during the creation of the `Request`.
    CreationIoError(IoError),
}

impl From<IoError> for RequestCreationError {
    fn from(err: IoError) -> RequestCreationError {
        RequestCreationError::CreationIoError(err)
    }
}

/// Syncto patch: how the body is delimited, per RFC 9112 §6.3. A
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

/// Builds a new request.
///
/// After the request line and headers have been read from the socket, a new `Request` object
/// is built.
///
/// You must pass a `Read` that will allow the `Request` object to read from the incoming data.
/// It is the responsibility of the `Request` to read only the data of the request and not further.
///
/// The `Write` object will be used by the `Request` to write the response.
#[allow(clippy::too_many_arguments)]
pub(crate) fn new_request<R, W>(
    secure: bool,
    method: Method,
    path: String,
    version: HTTPVersion,
    headers: Vec<Header>,
    remote_addr: Option<SocketAddr>,
    mut source_data: R,
    writer: W,
    socket: Option<Arc<Socket>>,
) -> Result<Request, RequestCreationError>
where
    R: Read + Send + 'static,
    W: Write + Send + 'static,
{
    let (chunked, content_length) = framing(&headers, &version)?;

    // true if the client sent a `Expect: 100-continue` header
    let expects_continue = {
        match headers
            .iter()
            .find(|h: &&Header| h.field.equiv("Expect"))
            .map(|h| h.value.as_str())
        {
            None => false,
            Some(v) if v.eq_ignore_ascii_case("100-continue") => true,
            _ => return Err(RequestCreationError::ExpectationFailed),
        }
    };

    // Syncto patch: whether the client keeps the connection open.
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

    // we wrap `source_data` around a reading whose nature depends on the transfer-encoding and
    // content-length headers
    let reader = if chunked {
        Box::new(ChunkedDecoder::new(source_data)) as Box<dyn Read + Send + 'static>
    } else if let Some(content_length) = content_length {
        if content_length == 0 {
            Box::new(io::empty()) as Box<dyn Read + Send + 'static>
        } else if content_length <= 1024 && !expects_continue {
            // if the content-length is small enough, we just read everything into a buffer

            let mut buffer = vec![0; content_length];
            let mut offset = 0;

            while offset != content_length {
                let read = source_data.read(&mut buffer[offset..])?;
                if read == 0 {
                    // the socket returned EOF, but we were before the expected content-length
                    // aborting
                    let info = "Connection has been closed before we received enough data";
                    let err = IoError::new(ErrorKind::ConnectionAborted, info);
                    return Err(RequestCreationError::CreationIoError(err));
                }

                offset += read;
            }

            Box::new(Cursor::new(buffer)) as Box<dyn Read + Send + 'static>
        } else {
            Box::new(EqualReader::new(source_data, content_length))
                as Box<dyn Read + Send + 'static>
        }
    } else {
        // if we have neither a Content-Length nor a Transfer-Encoding,
        // assuming that we have no data
        Box::new(io::empty()) as Box<dyn Read + Send + 'static>
    };
    let finished = !chunked && content_length.unwrap_or(0) == 0;

    Ok(Request {
        data_reader: Some(Body { reader, finished }),
        response_writer: Some(Box::new(writer) as Box<dyn Write + Send + 'static>),
        remote_addr,
        secure,
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
    /// Returns true if the request was made through HTTPS.
    #[inline]
    pub fn secure(&self) -> bool {
        self.secure
    }

    /// Returns the method requested by the client (eg. `GET`, `POST`, etc.).
    #[inline]
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// Returns the resource requested by the client.
    #[inline]
    pub fn url(&self) -> &str {
        &self.path
    }

    /// Returns a list of all headers sent by the client.
    #[inline]
    pub fn headers(&self) -> &[Header] {
        &self.headers
    }

    /// Returns the HTTP version of the request.
    #[inline]
    pub fn http_version(&self) -> &HTTPVersion {
        &self.http_version
    }

    /// Returns the length of the body in bytes.
    ///
    /// Returns `None` if the length is unknown.
    #[inline]
    pub fn body_length(&self) -> Option<usize> {
        self.body_length
    }

    /// Returns the address of the client that sent this request.
    ///
    /// The address is always `Some` for TCP listeners, but always `None` for UNIX listeners
    /// (as the remote address of a UNIX client is almost always unnamed).
    ///
    /// Note that this is gathered from the socket. If you receive the request from a proxy,
    /// this function will return the address of the proxy and not the address of the actual
    /// user.
    #[inline]
    pub fn remote_addr(&self) -> Option<&SocketAddr> {
        self.remote_addr.as_ref()
    }

    /// Allows to read the body of the request.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # use std::io::Read;
    /// # let server = listener::Server::http("0.0.0.0:0").unwrap();
    /// let mut request = server.recv().unwrap();
    ///
    /// let mut content = String::new();
    /// request.as_reader().read_to_string(&mut content).unwrap();
    /// ```
    ///
    /// If the client sent a `Expect: 100-continue` header with the request, calling this
    ///  function will send back a `100 Continue` response.
    #[inline]
    pub fn as_reader(&mut self) -> &mut dyn Read {
        if self.must_send_continue {
            if let Some(s) = &self.socket {
                s.start_send(None);
            }
            let msg = Response::new_empty(StatusCode(100));
            msg.raw_print(
                self.response_writer.as_mut().unwrap().by_ref(),
                self.http_version.clone(),
                &self.headers,
                true,
                false,
            )
            .ok();
            self.response_writer.as_mut().unwrap().flush().ok();
            self.must_send_continue = false;
        }

        self.data_reader.as_mut().unwrap()
    }

    /// Syncto patch: whether the body has been read to its end (always true
    /// without a body). When it has not, the response says
    /// `Connection: close` and the connection ends after it.
    pub fn body_finished(&self) -> bool {
        self.data_reader.as_ref().is_none_or(|b| b.finished)
    }

    /// Syncto patch: once the body has been read to its end, give the
    /// connection's input back, so that its thread can read the next
    /// request while this one is being answered elsewhere. Does nothing to
    /// a body not read to its end.
    pub fn release_body(&mut self) {
        if self.body_finished() {
            self.data_reader = Some(Body {
                reader: Box::new(io::empty()),
                finished: true,
            });
        }
    }

    /// Syncto patch: end the connection after the response (it says
    /// `Connection: close`).
    pub fn set_close(&mut self) {
        self.close = true;
    }

    /// Syncto patch: the response must be written within `limit` (instead of
    /// the listener's send limit), or the connection is closed.
    pub fn set_send_limit(&mut self, limit: std::time::Duration) {
        self.send_limit = Some(limit);
    }

    /// Syncto patch: whether the client keeps the connection open after this
    /// request (HTTP/1.1 without `Connection: close`, or HTTP/1.0 with
    /// `Connection: keep-alive`).
    pub fn keep_alive(&self) -> bool {
        self.keep_alive
    }

    /// Extract the response `Writer` object from the Request.
    ///
    /// This may only be called once on a single request.
    fn extract_writer_impl(&mut self) -> Box<dyn Write + Send + 'static> {
        use std::mem;

        assert!(self.response_writer.is_some());

        let mut writer = None;
        mem::swap(&mut self.response_writer, &mut writer);
        writer.unwrap()
    }

    /// Sends a response to this request.
    #[inline]
    pub fn respond<R>(mut self, response: Response<R>) -> Result<(), IoError>
    where
        R: Read,
    {
        self.respond_impl(response)
    }

    /// Syncto patch: sends a response whose body is in memory (see
    /// [`Response::from_bytes`]) within the request's send limit. If the
    /// client has not taken all of it by then, what is left comes back as
    /// an [`Unsent`], for another thread to finish within the listener's
    /// send limit, instead of the connection being closed.
    pub fn respond_or_hand_over(
        mut self,
        response: Response<io::Empty>,
    ) -> Result<Result<(), IoError>, Unsent> {
        let mut writer = self.extract_writer_impl();
        match self.print(&mut writer, response) {
            Err((e, Some(rest))) if e.kind() == ErrorKind::TimedOut => Err(Unsent {
                writer,
                rest,
                socket: self.socket.take(),
            }),
            written => Ok(self.finished(written.map_err(|(e, _)| e))),
        }
    }

    fn respond_impl<R>(&mut self, response: Response<R>) -> Result<(), IoError>
    where
        R: Read,
    {
        let mut writer = self.extract_writer_impl();
        let written = self.print(&mut writer, response).map_err(|(e, _)| e);
        self.finished(written)
    }

    /// Writes a response with `writer`.
    fn print<R: Read>(
        &mut self,
        writer: &mut Box<dyn Write + Send + 'static>,
        response: Response<R>,
    ) -> Result<(), (IoError, Option<Rest>)> {
        let do_not_send_body = self.method == Method::Head;

        // Syncto patch: what is left of an unread body would be parsed as
        // the next request (request smuggling): close instead.
        let close = self.close || !self.body_finished();
        if let Some(s) = &self.socket {
            if close {
                s.set_close();
            }
            s.start_send(self.send_limit);
        }

        response
            .print(
                writer.by_ref(),
                self.http_version.clone(),
                &self.headers,
                do_not_send_body,
                close || !self.keep_alive,
            )
            .and_then(|()| writer.flush().map_err(|e| (e, None)))
    }

    fn finished(&self, written: Result<(), IoError>) -> Result<(), IoError> {
        finished(self.socket.as_deref(), written)
    }
}

/// Syncto patch: the end of writing a response. One not written whole
/// leaves the connection in the middle of an answer: it ends there, at
/// once (its thread may be waiting for a next request).
fn finished(socket: Option<&Socket>, written: Result<(), IoError>) -> Result<(), IoError> {
    if let Some(s) = socket {
        if written.is_err() {
            s.abort();
        }
        s.answered();
    }
    ignore_client_closing_errors(written)
}

/// A client that left is not an error of the response.
fn ignore_client_closing_errors(result: io::Result<()>) -> io::Result<()> {
    result.or_else(|err| match err.kind() {
        ErrorKind::BrokenPipe => Ok(()),
        ErrorKind::ConnectionAborted => Ok(()),
        ErrorKind::ConnectionRefused => Ok(()),
        ErrorKind::ConnectionReset => Ok(()),
        _ => Err(err),
    })
}

/// Syncto patch: what is left of a response the client did not take within
/// its request's send limit (see [`Request::respond_or_hand_over`]).
pub struct Unsent {
    writer: Box<dyn Write + Send + 'static>,
    rest: Rest,
    socket: Option<Arc<Socket>>,
}

impl Unsent {
    /// Bytes still to write.
    pub fn left(&self) -> usize {
        self.rest.left()
    }

    /// Writes the rest within the listener's send limit; a client that does
    /// not take it by then loses the connection.
    pub fn finish(mut self) -> Result<(), IoError> {
        if let Some(s) = &self.socket {
            s.start_send(None);
        }
        let written = self
            .rest
            .write_to(self.writer.by_ref())
            .and_then(|()| self.writer.flush());
        finished(self.socket.as_deref(), written)
    }
}

impl fmt::Debug for Unsent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Unsent({} bytes left)", self.left())
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> Result<(), fmt::Error> {
        write!(
            formatter,
            "Request({} {} from {:?})",
            self.method, self.path, self.remote_addr
        )
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        if self.response_writer.is_some() {
            let response = Response::empty(500);
            let _ = self.respond_impl(response); // ignoring any potential error
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Request;

    #[test]
    fn must_be_send() {
        #![allow(dead_code)]
        fn f<T: Send>(_: &T) {}
        fn bar(rq: &Request) {
            f(rq);
        }
    }
}
