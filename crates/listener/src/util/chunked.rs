//! A strict decoder of chunked request bodies (RFC 9112 §7.1).
//!
//! A size line is at most 4 KiB (hex size, optional extensions, CRLF),
//! trailer fields are read and discarded (at most 100 lines of 16 KiB), and
//! anything else, or the connection ending before the last chunk, is an
//! error: a body is complete only when its zero-size chunk and the empty
//! line after the trailers have been read.

use std::convert::TryFrom;
use std::io::{Error, ErrorKind, Read, Result};

const MAX_SIZE_LINE: usize = 4096;
const MAX_TRAILER_LINE: usize = 16 * 1024;
const MAX_TRAILERS: usize = 100;

enum State {
    Size,
    Data(u64),
    DataEnd,
    Done,
}

pub struct ChunkedDecoder<R> {
    source: R,
    state: State,
}

fn malformed(what: &str) -> Error {
    Error::new(
        ErrorKind::InvalidData,
        format!("malformed chunked body: {what}"),
    )
}

impl<R: Read> ChunkedDecoder<R> {
    pub fn new(source: R) -> ChunkedDecoder<R> {
        ChunkedDecoder {
            source,
            state: State::Size,
        }
    }

    fn byte(&mut self) -> Result<u8> {
        let mut b = [0u8];
        loop {
            match self.source.read(&mut b) {
                Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
                Ok(_) => return Ok(b[0]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// One line up to CRLF (excluded), at most `max` bytes, no other
    /// control byte than HTAB.
    fn line(&mut self, max: usize) -> Result<Vec<u8>> {
        let mut line = Vec::new();
        loop {
            match self.byte()? {
                b'\r' => {
                    return if self.byte()? == b'\n' {
                        Ok(line)
                    } else {
                        Err(malformed("CR without LF"))
                    };
                }
                b'\n' => return Err(malformed("bare LF")),
                b if (b < 0x20 && b != b'\t') || b == 0x7f => {
                    return Err(malformed("control character"));
                }
                b => {
                    if line.len() >= max {
                        return Err(malformed("line too long"));
                    }
                    line.push(b);
                }
            }
        }
    }

    fn size(&mut self) -> Result<u64> {
        let line = self.line(MAX_SIZE_LINE)?;
        let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
        let rest = &line[digits..];
        let ext = rest.iter().position(|b| !matches!(b, b' ' | b'\t'));
        let ext_ok = ext.is_none_or(|i| rest[i] == b';');
        if digits == 0 || digits > 16 || !ext_ok {
            return Err(malformed("bad chunk size"));
        }
        let hex = std::str::from_utf8(&line[..digits]).map_err(|_| malformed("bad chunk size"))?;
        u64::from_str_radix(hex, 16).map_err(|_| malformed("bad chunk size"))
    }
}

impl<R: Read> Read for ChunkedDecoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match self.state {
                State::Done => return Ok(0),
                State::Size => {
                    let size = self.size()?;
                    if size == 0 {
                        for _ in 0..=MAX_TRAILERS {
                            if self.line(MAX_TRAILER_LINE)?.is_empty() {
                                self.state = State::Done;
                                return Ok(0);
                            }
                        }
                        return Err(malformed("too many trailer fields"));
                    }
                    self.state = State::Data(size);
                }
                State::Data(left) => {
                    let want = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                    let n = match self.source.read(&mut buf[..want]) {
                        Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
                        Ok(n) => n,
                        Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                        Err(e) => return Err(e),
                    };
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        State::DataEnd
                    } else {
                        State::Data(left)
                    };
                    return Ok(n);
                }
                State::DataEnd => {
                    if !self.line(0)?.is_empty() {
                        return Err(malformed("chunk longer than its size"));
                    }
                    self.state = State::Size;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ChunkedDecoder;
    use std::io::{ErrorKind, Read};

    fn decode(input: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        ChunkedDecoder::new(input).read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn well_formed_bodies() {
        assert_eq!(decode(b"5\r\nhello\r\n0\r\n\r\n").unwrap(), b"hello");
        assert_eq!(
            decode(b"3;ext=1\r\nabc\r\nA\r\n0123456789\r\n0\r\nX-Trailer: y\r\n\r\n").unwrap(),
            b"abc0123456789"
        );
        assert_eq!(decode(b"0\r\n\r\n").unwrap(), b"");
        // What follows the body is left for the next request.
        let mut rest = &b"1\r\na\r\n0\r\n\r\nGET / HTTP/1.1\r\n"[..];
        let mut out = Vec::new();
        ChunkedDecoder::new(&mut rest)
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(
            (out.as_slice(), rest),
            (&b"a"[..], &b"GET / HTTP/1.1\r\n"[..])
        );
    }

    #[test]
    fn malformed_or_truncated_bodies_are_errors() {
        for bad in [
            &b"5\nhello\r\n0\r\n\r\n"[..],
            b"5\r\nhello\n0\r\n\r\n",
            b"z\r\nhello\r\n0\r\n\r\n",
            b"\r\nhello\r\n0\r\n\r\n",
            b"-5\r\nhello\r\n0\r\n\r\n",
            b"5\r\nhelloX\r\n0\r\n\r\n",
            b"11111111111111111\r\n",
            b"5\r\nhel",
            b"5\r\nhello\r\n",
            b"5\r\nhello\r\n0\r\n",
            b"0\r\nX: \0\r\n\r\n",
        ] {
            let e = decode(bad).unwrap_err();
            assert!(
                matches!(e.kind(), ErrorKind::InvalidData | ErrorKind::UnexpectedEof),
                "{:?}: {e}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = format!("1;{}\r\na\r\n0\r\n\r\n", "x".repeat(5000));
        assert!(decode(long.as_bytes()).is_err());
    }

    /// A size of up to 16 hex digits is taken, leading zeros included, and
    /// 17 are not, whatever their value; after the digits come only
    /// whitespace and then an extension (`;`).
    #[test]
    fn a_size_has_at_most_16_digits_then_whitespace_and_extensions() {
        let body = |size: &str| format!("{size}\r\nhello\r\n0\r\n\r\n");
        for ok in ["0000000000000005", "5 ;e=1", "5\t;e", "5 "] {
            assert_eq!(decode(body(ok).as_bytes()).unwrap(), b"hello", "{ok:?}");
        }
        for bad in ["00000000000000005", "000000000000000005", "5x", "5 x"] {
            let e = decode(body(bad).as_bytes()).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidData, "{bad:?}");
        }
    }

    /// A trailer field may be 16 KiB long, not a byte more.
    #[test]
    fn a_trailer_line_may_be_16_kib_long() {
        let body = |len: usize| format!("0\r\nX: {}\r\n\r\n", "a".repeat(len - 3));
        assert_eq!(decode(body(16 * 1024).as_bytes()).unwrap(), b"");
        let e = decode(body(16 * 1024 + 1).as_bytes()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidData);
    }

    /// A source interrupted before each byte it gives, and that fails with
    /// `TimedOut` once it has no more.
    struct Choppy<'a> {
        data: &'a [u8],
        interrupted: bool,
    }

    impl Read for Choppy<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.data.is_empty() {
                return Err(ErrorKind::TimedOut.into());
            }
            self.interrupted = !self.interrupted;
            if self.interrupted {
                return Err(ErrorKind::Interrupted.into());
            }
            buf[0] = self.data[0];
            self.data = &self.data[1..];
            Ok(1)
        }
    }

    /// An interrupted read of the connection is tried again, in a size line
    /// and in a chunk's data alike: a read of the body never fails with
    /// `Interrupted` and never loses its place. Another error (the body's
    /// deadline) ends the read, in a size line and in data alike.
    #[test]
    fn an_interrupted_read_is_tried_again_and_another_error_ends_the_body() {
        let mut body = ChunkedDecoder::new(Choppy {
            data: b"5\r\nhello\r\n0\r\n\r\n",
            interrupted: false,
        });
        let mut out = Vec::new();
        let mut buf = [0u8; 16];
        loop {
            match body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) => panic!("{e} after {out:?}"),
            }
        }
        assert_eq!(out, b"hello");
        for cut in [&b"5"[..], b"5\r\nhe"] {
            let mut body = ChunkedDecoder::new(Choppy {
                data: cut,
                interrupted: false,
            });
            let e = body.read_to_end(&mut Vec::new()).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::TimedOut, "{cut:?}");
        }
    }
}
