//! A handle on a connection's [`Socket`]: the request reader and the
//! response writer each hold one, over the same descriptor (closed when the
//! last handle is gone).

use std::io::Result as IoResult;
use std::io::{IoSlice, Read, Write};
use std::sync::Arc;

use crate::socket::Socket;

pub(crate) struct RefinedTcpStream(Arc<Socket>);

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
