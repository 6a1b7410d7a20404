//! Where the server listens: a TCP address or a unix socket, as given by `--bind` or
//! `[server:main]`.

use std::fmt;
use std::io;
use std::path::PathBuf;
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
    /// Binds the listening socket. A unix socket gets `mode` right after the bind, so no
    /// proxy needs a chmod step of its own.
    pub(crate) fn bind(&self, mode: Option<u32>) -> io::Result<listener::Listener> {
        Ok(match self {
            Listen::Tcp(addr) => std::net::TcpListener::bind(addr.as_str())?.into(),
            Listen::Unix(path) => {
                let l = std::os::unix::net::UnixListener::bind(path)?;
                if let Some(mode) = mode {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
                }
                l.into()
            }
        })
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
