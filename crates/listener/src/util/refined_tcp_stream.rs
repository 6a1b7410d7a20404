//! Syncto patch: the reader and the writer of a connection are two handles
//! on one shared [`Socket`] (one descriptor, closed when both are gone),
//! instead of two `try_clone`d sockets each shut down on drop.

use std::io::Result as IoResult;
use std::io::{IoSlice, Read, Write};
use std::sync::Arc;

use crate::socket::Socket;

pub struct RefinedTcpStream(Arc<Socket>);

impl RefinedTcpStream {
    pub(crate) fn new(socket: Arc<Socket>) -> RefinedTcpStream {
        RefinedTcpStream(socket)
    }
}

impl Read for RefinedTcpStream {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        (&*self.0).read(buf)
    }
}

impl Write for RefinedTcpStream {
    fn write(&mut self, buf: &[u8]) -> IoResult<usize> {
        (&*self.0).write(buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> IoResult<usize> {
        (&*self.0).write_vectored(bufs)
    }

    fn flush(&mut self) -> IoResult<()> {
        Ok(())
    }
}

/// Syncto patch: a write buffer that exists only while a response is being
/// written: allocated at its first write, released at its flush. A 16 KiB
/// buffer lets a typical answer (head and a page of records) leave in one
/// `send`, and a connection that never gets an answer (or sits idle between
/// requests) holds none.
pub struct ResponseBuffer<W: Write> {
    inner: W,
    buf: Vec<u8>,
    capacity: usize,
}

impl<W: Write> ResponseBuffer<W> {
    pub fn new(inner: W, capacity: usize) -> ResponseBuffer<W> {
        ResponseBuffer {
            inner,
            buf: Vec::new(),
            capacity,
        }
    }
}

impl<W: Write> Write for ResponseBuffer<W> {
    fn write(&mut self, data: &[u8]) -> IoResult<usize> {
        if self.buf.len() + data.len() > self.capacity && !self.buf.is_empty() {
            let result = self.inner.write_all(&self.buf);
            self.buf.clear();
            result?;
        }
        if data.len() >= self.capacity {
            return self.inner.write(data);
        }
        if self.buf.capacity() == 0 {
            self.buf.reserve_exact(self.capacity);
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    /// Syncto patch: pieces written together (a response's head and body,
    /// see `Response::raw_print`) go to the socket in one `writev`, without
    /// a copy into the buffer, unless they fit in what the buffer has left.
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> IoResult<usize> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if self.buf.len() + total <= self.capacity && !self.buf.is_empty() {
            for b in bufs {
                self.buf.extend_from_slice(b);
            }
            return Ok(total);
        }
        if !self.buf.is_empty() {
            let result = self.inner.write_all(&self.buf);
            self.buf.clear();
            result?;
        }
        self.inner.write_vectored(bufs)
    }

    fn flush(&mut self) -> IoResult<()> {
        let result = if self.buf.is_empty() {
            Ok(())
        } else {
            self.inner.write_all(&self.buf)
        };
        self.buf = Vec::new();
        result
    }
}

impl<W: Write> Drop for ResponseBuffer<W> {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::ResponseBuffer;
    use std::io::{IoSlice, Write};

    /// Records each write it is given.
    #[derive(Default)]
    struct Sends(Vec<Vec<u8>>);

    impl Write for &mut Sends {
        fn write(&mut self, d: &[u8]) -> std::io::Result<usize> {
            self.0.push(d.to_vec());
            Ok(d.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_response_leaves_in_one_send_and_the_buffer_goes_with_it() {
        let mut sends = Sends::default();
        {
            let mut b = ResponseBuffer::new(&mut sends, 16);
            assert_eq!(b.buf.capacity(), 0);
            b.write_all(b"head;").unwrap();
            b.write_all(b"body").unwrap();
            assert_eq!(b.buf.capacity(), 16);
            b.flush().unwrap();
            assert_eq!(b.buf.capacity(), 0);
            // More than fits: what was buffered goes first, in order.
            b.write_all(b"0123456789").unwrap();
            b.write_all(b"abcdefghij").unwrap();
            b.write_all(&[b'x'; 20]).unwrap();
        }
        let all: Vec<u8> = sends.0.concat();
        assert_eq!(
            all,
            [&b"head;body0123456789abcdefghij"[..], &[b'x'; 20]].concat()
        );
        assert_eq!(sends.0[0], b"head;body");
        assert_eq!(sends.0.len(), 4);
    }

    /// Records each vectored write as one send.
    #[derive(Default)]
    struct Vectored(Vec<Vec<u8>>);

    impl Write for &mut Vectored {
        fn write(&mut self, d: &[u8]) -> std::io::Result<usize> {
            self.0.push(d.to_vec());
            Ok(d.len())
        }
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> std::io::Result<usize> {
            let all: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            let n = all.len();
            self.0.push(all);
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn pieces_written_together_leave_in_one_send_without_the_buffer() {
        let mut sends = Vectored::default();
        {
            let mut b = ResponseBuffer::new(&mut sends, 16);
            let pieces = [IoSlice::new(b"head;"), IoSlice::new(&[b'x'; 40])];
            assert_eq!(b.write_vectored(&pieces).unwrap(), 45);
            assert_eq!(b.buf.capacity(), 0);
            // After something buffered, what fits joins it; what doesn't
            // goes after it.
            b.write_all(b"abc").unwrap();
            let n = b
                .write_vectored(&[IoSlice::new(b"de"), IoSlice::new(b"f")])
                .unwrap();
            assert_eq!(n, 3);
            assert_eq!(b.write_vectored(&[IoSlice::new(&[b'y'; 20])]).unwrap(), 20);
        }
        let mut head_and_body = b"head;".to_vec();
        head_and_body.extend_from_slice(&[b'x'; 40]);
        assert_eq!(sends.0[0], head_and_body);
        assert_eq!(sends.0[1], b"abcdef");
        assert_eq!(sends.0[2], [b'y'; 20]);
        assert_eq!(sends.0.len(), 3);
    }
}
