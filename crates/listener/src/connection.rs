//! TCP and unix sockets behind one type: the listening socket, a
//! connection, and the address listened on.

use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
#[cfg(unix)]
use std::os::unix::net as unix_net;
#[cfg(unix)]
use std::path::PathBuf;

/// The listening socket: TCP, or a unix socket and the path clients reach
/// it at.
pub enum Listener {
    Tcp(TcpListener),
    #[cfg(unix)]
    Unix(unix_net::UnixListener, PathBuf),
}
impl Listener {
    /// A unix socket that clients reach at `path`: the path it was bound
    /// at, or another one it was moved to after the bind (a rename).
    #[cfg(unix)]
    pub fn unix_at(listener: unix_net::UnixListener, path: impl Into<PathBuf>) -> Listener {
        Self::Unix(listener, path.into())
    }

    pub(crate) fn local_addr(&self) -> std::io::Result<ListenAddr> {
        match self {
            Self::Tcp(l) => l.local_addr().map(ListenAddr::from),
            #[cfg(unix)]
            Self::Unix(_, path) => Ok(ListenAddr::Unix(path.clone())),
        }
    }

    pub(crate) fn accept(&self) -> std::io::Result<(Connection, Option<SocketAddr>)> {
        match self {
            Self::Tcp(l) => l
                .accept()
                .map(|(conn, addr)| (Connection::from(conn), Some(addr))),
            #[cfg(unix)]
            Self::Unix(l, _) => l.accept().map(|(conn, _)| (Connection::from(conn), None)),
        }
    }
}
impl From<TcpListener> for Listener {
    fn from(s: TcpListener) -> Self {
        Self::Tcp(s)
    }
}
/// A unix socket reached at the path it was bound at.
#[cfg(unix)]
impl From<unix_net::UnixListener> for Listener {
    fn from(s: unix_net::UnixListener) -> Self {
        let path = s
            .local_addr()
            .ok()
            .and_then(|a| a.as_pathname().map(PathBuf::from))
            .unwrap_or_default();
        Self::Unix(s, path)
    }
}

/// Unified connection. Either a [`TcpStream`] or [`std::os::unix::net::UnixStream`].
#[derive(Debug)]
pub(crate) enum Connection {
    Tcp(TcpStream),
    #[cfg(unix)]
    Unix(unix_net::UnixStream),
}
// Reads and writes through a shared reference, so that the request reader
// and the response writer use one descriptor instead of a `try_clone` each.
impl std::io::Read for &Connection {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match *self {
            Connection::Tcp(s) => {
                let mut s: &TcpStream = s;
                s.read(buf)
            }
            #[cfg(unix)]
            Connection::Unix(s) => {
                let mut s: &unix_net::UnixStream = s;
                s.read(buf)
            }
        }
    }
}
impl std::io::Write for &Connection {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match *self {
            Connection::Tcp(s) => {
                let mut s: &TcpStream = s;
                s.write(buf)
            }
            #[cfg(unix)]
            Connection::Unix(s) => {
                let mut s: &unix_net::UnixStream = s;
                s.write(buf)
            }
        }
    }

    // One `writev` for a response's head and body.
    fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
        match *self {
            Connection::Tcp(s) => {
                let mut s: &TcpStream = s;
                s.write_vectored(bufs)
            }
            #[cfg(unix)]
            Connection::Unix(s) => {
                let mut s: &unix_net::UnixStream = s;
                s.write_vectored(bufs)
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
impl Connection {
    /// Set the initial read and write timeouts, and
    /// TCP_NODELAY: responses are written in several pieces (head, body),
    /// and with Nagle's algorithm and the peer's delayed ACK each keep-alive
    /// response waited ~40 ms.
    pub(crate) fn set_timeouts(&self, read: std::time::Duration, write: std::time::Duration) {
        let _ = self.set_read_timeout(Some(read));
        let _ = self.set_write_timeout(Some(write));
        if let Self::Tcp(s) = self {
            let _ = s.set_nodelay(true);
        }
    }

    pub(crate) fn set_read_timeout(
        &self,
        timeout: Option<std::time::Duration>,
    ) -> std::io::Result<()> {
        match self {
            Self::Tcp(s) => s.set_read_timeout(timeout),
            #[cfg(unix)]
            Self::Unix(s) => s.set_read_timeout(timeout),
        }
    }

    pub(crate) fn set_write_timeout(
        &self,
        timeout: Option<std::time::Duration>,
    ) -> std::io::Result<()> {
        match self {
            Self::Tcp(s) => s.set_write_timeout(timeout),
            #[cfg(unix)]
            Self::Unix(s) => s.set_write_timeout(timeout),
        }
    }

    pub(crate) fn set_nonblocking(&self, on: bool) -> std::io::Result<()> {
        match self {
            Self::Tcp(s) => s.set_nonblocking(on),
            #[cfg(unix)]
            Self::Unix(s) => s.set_nonblocking(on),
        }
    }

    /// Gets the peer's address. Some for TCP, None for Unix sockets.
    pub(crate) fn peer_addr(&self) -> std::io::Result<Option<SocketAddr>> {
        match self {
            Self::Tcp(s) => s.peer_addr().map(Some),
            #[cfg(unix)]
            Self::Unix(_) => Ok(None),
        }
    }

    pub(crate) fn shutdown(&self, how: Shutdown) -> std::io::Result<()> {
        match self {
            Self::Tcp(s) => s.shutdown(how),
            #[cfg(unix)]
            Self::Unix(s) => s.shutdown(how),
        }
    }
}
impl From<TcpStream> for Connection {
    fn from(s: TcpStream) -> Self {
        Self::Tcp(s)
    }
}
#[cfg(unix)]
impl From<unix_net::UnixStream> for Connection {
    fn from(s: unix_net::UnixStream) -> Self {
        Self::Unix(s)
    }
}

/// The address listened on: TCP, or the path of a unix socket.
#[derive(Debug, Clone)]
pub enum ListenAddr {
    IP(SocketAddr),
    #[cfg(unix)]
    Unix(PathBuf),
}
impl ListenAddr {
    pub fn to_ip(self) -> Option<SocketAddr> {
        match self {
            Self::IP(s) => Some(s),
            #[cfg(unix)]
            Self::Unix(_) => None,
        }
    }

    /// The unix socket's path.
    #[cfg(unix)]
    pub fn to_unix(self) -> Option<PathBuf> {
        match self {
            Self::IP(_) => None,
            Self::Unix(p) => Some(p),
        }
    }
}
impl From<SocketAddr> for ListenAddr {
    fn from(s: SocketAddr) -> Self {
        Self::IP(s)
    }
}
impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::IP(s) => s.fmt(f),
            #[cfg(unix)]
            Self::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}
