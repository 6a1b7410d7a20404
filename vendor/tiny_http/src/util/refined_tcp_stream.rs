//! Syncto patch: the reader and the writer of a connection are two handles
//! on one shared [`Socket`] (one descriptor, closed when both are gone),
//! instead of two `try_clone`d sockets each shut down on drop.

use std::io::Result as IoResult;
use std::io::{Read, Write};
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

    fn flush(&mut self) -> IoResult<()> {
        Ok(())
    }
}
