use crate::common::{HTTPVersion, Header, StatusCode};
use httpdate::HttpDate;
use std::cmp::Ordering;
use std::sync::mpsc::Receiver;

use std::io::Result as IoResult;
use std::io::{self, Cursor, IoSlice, Read, Write};

use std::fs::File;

use std::str::FromStr;
use std::time::SystemTime;

/// Object representing an HTTP response whose purpose is to be given to a `Request`.
///
/// Some headers cannot be changed. Trying to define the value
/// of one of these will have no effect:
///
///  - `Connection`
///  - `Trailer`
///  - `Transfer-Encoding`
///  - `Upgrade`
///
/// Some headers have special behaviors:
///
///  - `Content-Encoding`: If you define this header, the library
///    will assume that the data from the `Read` object has the specified encoding
///    and will just pass-through.
///
///  - `Content-Length`: The length of the data should be set manually
///    using the `Reponse` object's API. Attempting to set the value of this
///    header will be equivalent to modifying the size of the data but the header
///    itself may not be present in the final result.
///
///  - `Content-Type`: You may only set this header to one value at a time. If you
///    try to set it more than once, the existing value will be overwritten. This
///    behavior differs from the default for most headers, which is to allow them to
///    be set multiple times in the same response.
///
pub struct Response<R> {
    reader: R,
    status_code: StatusCode,
    headers: Vec<Header>,
    data_length: Option<usize>,
    chunked_threshold: Option<usize>,
    /// Syncto patch: a body already in memory (see `Response::from_bytes`),
    /// written with the head in one `writev` instead of copied through
    /// `reader`.
    bytes: Option<Box<dyn AsRef<[u8]> + Send>>,
}

/// A `Response` without a template parameter.
pub type ResponseBox = Response<Box<dyn Read + Send>>;

/// Transfer encoding to use when sending the message.
/// Note that only *supported* encoding are listed here.
#[derive(Copy, Clone)]
enum TransferEncoding {
    Identity,
    Chunked,
}

impl FromStr for TransferEncoding {
    type Err = ();

    fn from_str(input: &str) -> Result<TransferEncoding, ()> {
        if input.eq_ignore_ascii_case("identity") {
            Ok(TransferEncoding::Identity)
        } else if input.eq_ignore_ascii_case("chunked") {
            Ok(TransferEncoding::Chunked)
        } else {
            Err(())
        }
    }
}

/// Builds a Date: header with the current date.
fn build_date_header() -> Header {
    let d = HttpDate::from(SystemTime::now());
    Header::from_bytes(&b"Date"[..], &d.to_string().into_bytes()[..]).unwrap()
}

fn write_message_header<W>(
    mut writer: W,
    http_version: &HTTPVersion,
    status_code: &StatusCode,
    headers: &[Header],
) -> IoResult<()>
where
    W: Write,
{
    // writing status line
    write!(
        &mut writer,
        "HTTP/{}.{} {} {}\r\n",
        http_version.0,
        http_version.1,
        status_code.0,
        status_code.default_reason_phrase()
    )?;

    // writing headers
    for header in headers.iter() {
        // Syncto patch: a header whose name is not a token or whose value
        // holds a control character (CR, LF, NUL…) is never written: such
        // bytes would end the header early and let a value that came from
        // a request (a path, a query) add headers or a body of its own.
        if !writable(header) {
            log::warn!(
                "response header {:?} dropped: control characters in its name or value",
                header.field.as_str().as_str().escape_debug().to_string()
            );
            continue;
        }
        writer.write_all(header.field.as_str().as_ref())?;
        write!(&mut writer, ": ")?;
        writer.write_all(header.value.as_str().as_ref())?;
        write!(&mut writer, "\r\n")?;
    }

    // separator between header and data
    write!(&mut writer, "\r\n")?;

    Ok(())
}

/// Syncto patch: `Write::write_all_vectored`, which is not stable: write
/// every byte of `bufs`, in as few calls as the writer allows, counting in
/// `written` the bytes that left (also when it fails part way).
fn write_all_vectored<W: Write>(
    writer: &mut W,
    mut bufs: &mut [IoSlice<'_>],
    written: &mut usize,
) -> IoResult<()> {
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

/// Syncto patch: a response held in memory (head and body), of which the
/// first `written` bytes have left; see `Request::respond_or_hand_over`.
pub(crate) struct Rest {
    head: Vec<u8>,
    body: Option<Box<dyn AsRef<[u8]> + Send>>,
    written: usize,
}

impl Rest {
    /// Writes what has not left yet.
    pub(crate) fn write_to<W: Write>(&mut self, mut writer: W) -> IoResult<()> {
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
        let body = self.body.as_ref().map_or(0, |b| (**b).as_ref().len());
        self.head.len() + body - self.written
    }
}

/// Syncto patch: a name made of token characters and a value without
/// control characters other than HTAB.
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

fn choose_transfer_encoding(
    status_code: StatusCode,
    request_headers: &[Header],
    http_version: &HTTPVersion,
    entity_length: &Option<usize>,
    has_additional_headers: bool,
    chunked_threshold: usize,
) -> TransferEncoding {
    use crate::util;

    // HTTP 1.0 doesn't support other encoding
    if *http_version <= (1, 0) {
        return TransferEncoding::Identity;
    }

    // Syncto patch: a body of known length is sent as it is, with its
    // `Content-Length`, however large: chunks only add framing (and one
    // write per 8 KiB chunk) to bytes that are all there.
    if entity_length.is_some() {
        return TransferEncoding::Identity;
    }

    // Per section 3.3.1 of RFC7230:
    // A server MUST NOT send a Transfer-Encoding header field in any response with a status code
    // of 1xx (Informational) or 204 (No Content).
    if status_code.0 < 200 || status_code.0 == 204 {
        return TransferEncoding::Identity;
    }

    // parsing the request's TE header
    let user_request = request_headers
        .iter()
        // finding TE
        .find(|h| h.field.equiv("TE"))
        // getting its value
        .map(|h| h.value.clone())
        // getting the corresponding TransferEncoding
        .and_then(|value| {
            // getting list of requested elements
            let mut parse = util::parse_header_value(value.as_str()); // TODO: remove conversion

            // sorting elements by most priority
            parse.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap_or(Ordering::Equal));

            // trying to parse each requested encoding
            for value in parse.iter() {
                // q=0 are ignored
                if value.1 <= 0.0 {
                    continue;
                }

                if let Ok(te) = TransferEncoding::from_str(value.0) {
                    return Some(te);
                }
            }

            // encoding not found
            None
        });

    if let Some(user_request) = user_request {
        return user_request;
    }

    // if we have additional headers, using chunked
    if has_additional_headers {
        return TransferEncoding::Chunked;
    }

    // if we don't have a Content-Length, or if the Content-Length is too big, using chunks writer
    if entity_length
        .as_ref()
        .is_none_or(|val| *val >= chunked_threshold)
    {
        return TransferEncoding::Chunked;
    }

    // Identity by default
    TransferEncoding::Identity
}

impl<R> Response<R>
where
    R: Read,
{
    /// Creates a new Response object.
    ///
    /// The `additional_headers` argument is a receiver that
    ///  may provide headers even after the response has been sent.
    ///
    /// All the other arguments are straight-forward.
    pub fn new(
        status_code: StatusCode,
        headers: Vec<Header>,
        data: R,
        data_length: Option<usize>,
        additional_headers: Option<Receiver<Header>>,
    ) -> Response<R> {
        let mut response = Response {
            reader: data,
            status_code,
            headers: Vec::with_capacity(16),
            data_length,
            chunked_threshold: None,
            bytes: None,
        };

        for h in headers {
            response.add_header(h)
        }

        // dummy implementation
        if let Some(additional_headers) = additional_headers {
            for h in additional_headers.iter() {
                response.add_header(h)
            }
        }

        response
    }

    /// Set a threshold for `Content-Length` where we chose chunked
    /// transfer. Notice that chunked transfer might happen regardless of
    /// this threshold, for instance when the request headers indicate
    /// it is wanted or when there is no `Content-Length`.
    pub fn with_chunked_threshold(mut self, length: usize) -> Response<R> {
        self.chunked_threshold = Some(length);
        self
    }

    /// Convert the response into the underlying `Read` type.
    ///
    /// This is mainly useful for testing as it must consume the `Response`.
    pub fn into_reader(self) -> R {
        self.reader
    }

    /// The current `Content-Length` threshold for switching over to
    /// chunked transfer. The default is 32768 bytes. Notice that
    /// chunked transfer is mutually exclusive with sending a
    /// `Content-Length` header as per the HTTP spec.
    pub fn chunked_threshold(&self) -> usize {
        self.chunked_threshold.unwrap_or(32768)
    }

    /// Adds a header to the list.
    /// Does all the checks.
    pub fn add_header<H>(&mut self, header: H)
    where
        H: Into<Header>,
    {
        let header = header.into();

        // ignoring forbidden headers
        if header.field.equiv("Connection")
            || header.field.equiv("Trailer")
            || header.field.equiv("Transfer-Encoding")
            || header.field.equiv("Upgrade")
        {
            return;
        }

        // if the header is Content-Length, setting the data length
        if header.field.equiv("Content-Length") {
            if let Ok(val) = usize::from_str(header.value.as_str()) {
                self.data_length = Some(val)
            }

            return;
        // if the header is Content-Type and it's already set, overwrite it
        } else if header.field.equiv("Content-Type") {
            if let Some(content_type_header) = self
                .headers
                .iter_mut()
                .find(|h| h.field.equiv("Content-Type"))
            {
                content_type_header.value = header.value;
                return;
            }
        }

        self.headers.push(header);
    }

    /// Returns the same request, but with an additional header.
    ///
    /// Some headers cannot be modified and some other have a
    ///  special behavior. See the documentation above.
    #[inline]
    pub fn with_header<H>(mut self, header: H) -> Response<R>
    where
        H: Into<Header>,
    {
        self.add_header(header.into());
        self
    }

    /// Returns the same request, but with a different status code.
    #[inline]
    pub fn with_status_code<S>(mut self, code: S) -> Response<R>
    where
        S: Into<StatusCode>,
    {
        self.status_code = code.into();
        self
    }

    /// Returns the same request, but with different data.
    pub fn with_data<S>(self, reader: S, data_length: Option<usize>) -> Response<S>
    where
        S: Read,
    {
        Response {
            reader,
            headers: self.headers,
            status_code: self.status_code,
            data_length,
            chunked_threshold: self.chunked_threshold,
            bytes: None,
        }
    }

    /// Prints the HTTP response to a writer.
    ///
    /// This function is the one used to send the response to the client's socket.
    /// Therefore you shouldn't expect anything pretty-printed or even readable.
    ///
    /// The HTTP version and headers passed as arguments are used to
    ///  decide which features (most notably, encoding) to use.
    ///
    /// Note: does not flush the writer.
    pub fn raw_print<W: Write>(
        self,
        writer: W,
        http_version: HTTPVersion,
        request_headers: &[Header],
        do_not_send_body: bool,
        close: bool,
    ) -> IoResult<()> {
        self.print(
            writer,
            http_version,
            request_headers,
            do_not_send_body,
            close,
        )
        .map_err(|(e, _)| e)
    }

    /// Syncto patch: `raw_print`, which on failure also gives back what is
    /// left of a response held in memory.
    pub(crate) fn print<W: Write>(
        mut self,
        mut writer: W,
        http_version: HTTPVersion,
        request_headers: &[Header],
        do_not_send_body: bool,
        close: bool,
    ) -> Result<(), (io::Error, Option<Rest>)> {
        if let Some(body) = &self.bytes {
            self.data_length = Some((**body).as_ref().len());
        }
        let transfer_encoding = Some(choose_transfer_encoding(
            self.status_code,
            request_headers,
            &http_version,
            &self.data_length,
            false, /* TODO */
            self.chunked_threshold(),
        ));

        // add `Date` if not in the headers
        if !self.headers.iter().any(|h| h.field.equiv("Date")) {
            self.headers.insert(0, build_date_header());
        }

        // add `Server` if not in the headers
        if !self.headers.iter().any(|h| h.field.equiv("Server")) {
            self.headers.insert(
                0,
                Header::from_bytes(&b"Server"[..], &b"tiny-http (Rust)"[..]).unwrap(),
            );
        }

        // Syncto patch: no protocol upgrade (raw-socket hand-over); say when
        // the connection ends after this response.
        if close {
            self.headers
                .push(Header::from_bytes(&b"Connection"[..], &b"close"[..]).unwrap());
        }

        // if the transfer encoding is identity, the content length must be known ; therefore if
        // we don't know it, we buffer the entire response first here
        // while this is an expensive operation, it is only ever needed for clients using HTTP 1.0
        let (mut reader, data_length): (Box<dyn Read>, _) =
            match (self.data_length, transfer_encoding) {
                (Some(l), _) => (Box::new(self.reader), Some(l)),
                (None, Some(TransferEncoding::Identity)) => {
                    let mut buf = Vec::new();
                    self.reader.read_to_end(&mut buf).map_err(|e| (e, None))?;
                    let l = buf.len();
                    (Box::new(Cursor::new(buf)), Some(l))
                }
                _ => (Box::new(self.reader), None),
            };

        // checking whether to ignore the body of the response
        let do_not_send_body = do_not_send_body
            || match self.status_code.0 {
                // status code 1xx, 204 and 304 MUST not include a body
                100..=199 | 204 | 304 => true,
                _ => false,
            };

        // preparing headers for transfer
        match transfer_encoding {
            Some(TransferEncoding::Chunked) => self
                .headers
                .push(Header::from_bytes(&b"Transfer-Encoding"[..], &b"chunked"[..]).unwrap()),

            Some(TransferEncoding::Identity) => {
                assert!(data_length.is_some());
                let data_length = data_length.unwrap();

                self.headers.push(
                    Header::from_bytes(
                        &b"Content-Length"[..],
                        format!("{}", data_length).as_bytes(),
                    )
                    .unwrap(),
                )
            }

            _ => (),
        };

        // sending headers
        // Syncto patch: the head is formatted in memory and leaves with the
        // first bytes of the body (all of it when it is in memory).
        let mut head = Vec::with_capacity(512);
        write_message_header(&mut head, &http_version, &self.status_code, &self.headers)
            .map_err(|e| (e, None))?;
        if let Some(body) = self.bytes.take() {
            let mut rest = Rest {
                head,
                body: (!do_not_send_body).then_some(body),
                written: 0,
            };
            return rest.write_to(&mut writer).map_err(|e| (e, Some(rest)));
        }
        writer.write_all(&head).map_err(|e| (e, None))?;

        // sending the body
        if !do_not_send_body {
            match transfer_encoding {
                Some(TransferEncoding::Chunked) => {
                    use chunked_transfer::Encoder;

                    let mut writer = Encoder::new(writer);
                    io::copy(&mut reader, &mut writer).map_err(|e| (e, None))?;
                }

                Some(TransferEncoding::Identity) => {
                    assert!(data_length.is_some());
                    let data_length = data_length.unwrap();

                    if data_length >= 1 {
                        io::copy(&mut reader, &mut writer).map_err(|e| (e, None))?;
                    }
                }

                _ => (),
            }
        }

        Ok(())
    }

    /// Retrieves the current value of the `Response` status code
    pub fn status_code(&self) -> StatusCode {
        self.status_code
    }

    /// Retrieves the current value of the `Response` data length
    pub fn data_length(&self) -> Option<usize> {
        self.data_length
    }

    /// Retrieves the current list of `Response` headers
    pub fn headers(&self) -> &[Header] {
        &self.headers
    }
}

impl<R> Response<R>
where
    R: Read + Send + 'static,
{
    /// Turns this response into a `Response<Box<Read + Send>>`.
    pub fn boxed(self) -> ResponseBox {
        Response {
            reader: Box::new(self.reader) as Box<dyn Read + Send>,
            status_code: self.status_code,
            headers: self.headers,
            data_length: self.data_length,
            chunked_threshold: self.chunked_threshold,
            bytes: self.bytes,
        }
    }
}

impl Response<File> {
    /// Builds a new `Response` from a `File`.
    ///
    /// The `Content-Type` will **not** be automatically detected,
    ///  you must set it yourself.
    pub fn from_file(file: File) -> Response<File> {
        let file_size = file.metadata().ok().map(|v| v.len() as usize);

        Response::new(
            StatusCode(200),
            Vec::with_capacity(0),
            file,
            file_size,
            None,
        )
    }
}

impl Response<Cursor<Vec<u8>>> {
    pub fn from_data<D>(data: D) -> Response<Cursor<Vec<u8>>>
    where
        D: Into<Vec<u8>>,
    {
        let data = data.into();
        let data_len = data.len();

        Response::new(
            StatusCode(200),
            Vec::with_capacity(0),
            Cursor::new(data),
            Some(data_len),
            None,
        )
    }

    pub fn from_string<S>(data: S) -> Response<Cursor<Vec<u8>>>
    where
        S: Into<String>,
    {
        let data = data.into();
        let data_len = data.len();

        Response::new(
            StatusCode(200),
            vec![
                Header::from_bytes(&b"Content-Type"[..], &b"text/plain; charset=UTF-8"[..])
                    .unwrap(),
            ],
            Cursor::new(data.into_bytes()),
            Some(data_len),
            None,
        )
    }
}

impl Response<io::Empty> {
    /// Syncto patch: a response whose body is already in memory. It is
    /// written with the head in one `writev` (no copy, no chunks), then
    /// dropped (a buffer type of the caller's can take itself back then).
    pub fn from_bytes<B>(status_code: StatusCode, headers: Vec<Header>, body: B) -> Self
    where
        B: AsRef<[u8]> + Send + 'static,
    {
        let len = body.as_ref().len();
        let mut response = Response::new(status_code, headers, io::empty(), Some(len), None);
        response.bytes = Some(Box::new(body));
        response
    }

    /// Builds an empty `Response` with the given status code.
    pub fn empty<S>(status_code: S) -> Response<io::Empty>
    where
        S: Into<StatusCode>,
    {
        Response::new(
            status_code.into(),
            Vec::with_capacity(0),
            io::empty(),
            Some(0),
            None,
        )
    }

    /// DEPRECATED. Use `empty` instead.
    pub fn new_empty(status_code: StatusCode) -> Response<io::Empty> {
        Response::empty(status_code)
    }
}

impl Clone for Response<io::Empty> {
    fn clone(&self) -> Response<io::Empty> {
        Response {
            reader: io::empty(),
            status_code: self.status_code,
            headers: self.headers.clone(),
            data_length: self.data_length,
            chunked_threshold: self.chunked_threshold,
            bytes: self
                .bytes
                .as_ref()
                .map(|b| Box::new((**b).as_ref().to_vec()) as Box<dyn AsRef<[u8]> + Send>),
        }
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
            .raw_print(&mut out, HTTPVersion(1, 1), &[], false, false)
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
            assert!(!out.contains("Set-Cookie"), "{}", "{out:?}");
            assert!(!out.contains("/x"), "{}", "{out:?}");
        }
        let out = written(b"Location", b"/x\t%0D%0A");
        assert!(
            out.contains("\r\nLocation: /x\t%0D%0A\r\n"),
            "{}",
            "{out:?}"
        );
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
        Response::from_bytes(StatusCode(200), vec![], body.clone())
            .raw_print(&mut out, HTTPVersion(1, 1), &[], false, false)
            .unwrap();
        let end = out.0.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let head = String::from_utf8_lossy(&out.0[..end]);
        assert!(
            head.contains("\r\nContent-Length: 100000\r\n"),
            "{}",
            "{head}"
        );
        assert!(!head.contains("Transfer-Encoding"), "{}", "{head}");
        assert_eq!(&out.0[end..], &body[..]);
        assert!(out.1 > 100_000 / 7);

        // The head only, for HEAD.
        let mut out = Trickle(Vec::new(), 0);
        Response::from_bytes(StatusCode(200), vec![], body)
            .raw_print(&mut out, HTTPVersion(1, 1), &[], true, false)
            .unwrap();
        let text = String::from_utf8(out.0).unwrap();
        assert!(
            text.ends_with("\r\nContent-Length: 100000\r\n\r\n"),
            "{}",
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
    fn a_response_in_memory_stopped_part_way_goes_on_where_it_stopped() {
        let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let mut whole = Vec::new();
        Response::from_bytes(StatusCode(200), vec![], body.clone())
            .raw_print(&mut whole, HTTPVersion(1, 1), &[], false, false)
            .unwrap();
        // Stopped in the head, and in the body.
        for first in [10, 60_000] {
            let mut out = Stalls(Vec::new(), first);
            let (e, rest) = Response::from_bytes(StatusCode(200), vec![], body.clone())
                .print(&mut out, HTTPVersion(1, 1), &[], false, false)
                .err()
                .unwrap();
            assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
            let mut rest = rest.unwrap();
            assert_eq!(rest.left(), whole.len() - first);
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
    fn a_closing_response_says_so() {
        let mut out = Vec::new();
        Response::from_string("x")
            .raw_print(&mut out, HTTPVersion(1, 1), &[], false, true)
            .unwrap();
        assert!(String::from_utf8(out)
            .unwrap()
            .contains("\r\nConnection: close\r\n"));
    }
}
