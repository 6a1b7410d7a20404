//! Where the server listens: a TCP address or a unix socket, as given by `--bind` or
//! `[server:main]`, and binding it (a unix socket with its mode from the start, and in
//! place of one a crashed server left).

use std::fmt;
use std::io;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Where the server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// `host:port` as given, IPv6 hosts bracketed: `127.0.0.1:8000`, `[::1]:0`.
    Tcp(String),
    /// A Unix domain socket path (`--bind unix:/path`).
    Unix(PathBuf),
}

impl Listen {
    /// Binds the listening socket. A unix socket: see [`bind_unix`].
    pub(crate) fn bind(&self, mode: Option<u32>) -> io::Result<listener::Listener> {
        Ok(match self {
            Listen::Tcp(addr) => std::net::TcpListener::bind(addr.as_str())?.into(),
            Listen::Unix(path) => listener::Listener::unix_at(bind_unix(path, mode)?, path.clone()),
        })
    }
}

/// Binds a unix socket at `path` with `mode` (else the mode the umask gives), so that
/// no proxy needs a chmod step of its own.
///
/// The socket is bound in a fresh directory only this user can enter, beside `path`,
/// given its mode there, then renamed into place: the file at `path` never has another
/// mode, not even for an instant (a chmod after the bind would leave one), and a client
/// never finds it half ready.
///
/// A file already at `path` is replaced only if it is a socket nothing answers on (one
/// left by a process that crashed): if something answers, another server is running
/// there and the bind fails (`AddrInUse`); anything but a socket is left alone
/// (`AlreadyExists`).
pub(crate) fn bind_unix(path: &Path, mode: Option<u32>) -> io::Result<UnixListener> {
    let staged = Staged::bind(path, mode)?;
    refuse_a_live_socket(path)?;
    staged.publish(path)
}

/// Whether `path` may be replaced: nothing there, or a socket nothing answers on.
fn refuse_a_live_socket(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "the path exists and is not a socket; it is left alone",
        ));
    }
    match UnixStream::connect(path) {
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            "another process answers on this socket",
        )),
        // A socket nobody listens on: left by a server that did not stop cleanly.
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            log::warn!(
                "replacing the stale socket {} (nothing answered on it)",
                path.display()
            );
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// A unix socket bound in a private directory, waiting to be renamed into place; the
/// directory (and the socket, unless published) go when it is dropped.
struct Staged {
    listener: Option<UnixListener>,
    dir: PathBuf,
    file: PathBuf,
}

impl Drop for Staged {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.file);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

impl Staged {
    /// Binds in a new directory (mode 0700) beside `path`, then gives the socket `mode`.
    fn bind(path: &Path, mode: Option<u32>) -> io::Result<Staged> {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let name = path
            .file_name()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
        let mut tries = 0;
        let dir = loop {
            let mut tag = [0u8; 6];
            getrandom::getrandom(&mut tag).map_err(|e| io::Error::other(e.to_string()))?;
            let tag: String = tag.iter().map(|b| format!("{b:02x}")).collect();
            let dir = parent.join(format!(".{}.{tag}", name.to_string_lossy()));
            match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => break dir,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && tries < 8 => tries += 1,
                Err(e) => return Err(e),
            }
        };
        let mut staged = Staged {
            listener: None,
            file: dir.join(name),
            dir,
        };
        staged.listener = Some(UnixListener::bind(&staged.file)?);
        if let Some(mode) = mode {
            std::fs::set_permissions(&staged.file, std::fs::Permissions::from_mode(mode))?;
        }
        Ok(staged)
    }

    /// Renames the socket to `path`, replacing what is there.
    fn publish(mut self, path: &Path) -> io::Result<UnixListener> {
        std::fs::rename(&self.file, path)?;
        Ok(self.listener.take().expect("bound"))
    }
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Listen::Tcp(addr) => f.write_str(addr),
            Listen::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// A `--bind` value: `host:port`, `[v6]:port` or `unix:/path`.
impl FromStr for Listen {
    type Err = String;

    fn from_str(s: &str) -> Result<Listen, String> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err("expected a socket path after unix:".into());
            }
            return Ok(Listen::Unix(PathBuf::from(path)));
        }
        let expected = format!("expected HOST:PORT, [IPV6]:PORT or unix:/PATH, got {s:?}");
        let (host, port) = s.rsplit_once(':').ok_or_else(|| expected.clone())?;
        let host_ok = if let Some(inner) = host.strip_prefix('[') {
            inner
                .strip_suffix(']')
                .is_some_and(|h| !h.is_empty() && !h.contains(['[', ']']))
        } else {
            valid_host(host) && !host.contains(':')
        };
        if !host_ok || !port.bytes().all(|b| b.is_ascii_digit()) || port.parse::<u16>().is_err() {
            return Err(expected);
        }
        Ok(Listen::Tcp(s.to_string()))
    }
}

/// Non-empty, without whitespace or `/`.
pub(crate) fn valid_host(host: &str) -> bool {
    !host.is_empty() && !host.contains(|c: char| c.is_whitespace() || c == '/')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    /// The socket gets its mode before it is at its path: the only file ever at the path
    /// is one with that mode, whatever the umask (a chmod after a bind in place left a
    /// moment with the umask's mode).
    #[test]
    fn a_unix_socket_has_its_mode_before_it_is_in_place() {
        let dir = std::env::temp_dir().join(format!("syncto-listen-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        let staged = Staged::bind(&path, Some(0o600)).unwrap();
        // Bound in a directory only this user can enter, beside the path.
        assert_eq!(staged.dir.parent(), Some(dir.as_path()));
        assert_eq!(mode(&staged.dir), 0o700);
        assert_eq!(mode(&staged.file), 0o600);
        assert!(!path.exists(), "nothing at the path yet");
        let private = staged.dir.clone();
        let listener = staged.publish(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert!(!private.exists(), "the private directory is gone");
        // It is the listening socket, at its path.
        let _client = UnixStream::connect(&path).unwrap();
        listener.accept().unwrap();
        drop(listener);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
