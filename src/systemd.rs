//! The two things Syncto needs from systemd, without a crate.
//!
//! `Type=notify` readiness is one datagram (`READY=1`, `STOPPING=1`, `STATUS=…`) sent to the
//! socket named by `$NOTIFY_SOCKET`; that is a few lines over [`UnixDatagram`]. (Whether
//! stderr goes to the journal is the logger's question: `logging/journal.rs`.) Everything
//! here is best effort: outside systemd the variable is unset and the functions do nothing.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixDatagram;

/// Sends `state` (for example `"READY=1"`, `"STOPPING=1"` or `"STATUS=…"`) to the service
/// manager if `$NOTIFY_SOCKET` is set.
///
/// Errors are ignored: a failed notification must not stop the server (systemd will time out
/// and report it). Returns whether a datagram was sent.
pub fn notify(state: &str) -> bool {
    match std::env::var_os("NOTIFY_SOCKET") {
        Some(socket) => notify_to(&socket, state),
        None => false,
    }
}

/// [`notify`] with the socket given explicitly, so tests need not touch the process
/// environment (which is shared by every test thread).
fn notify_to(socket: &OsStr, state: &str) -> bool {
    let bytes = socket.as_bytes();
    let Ok(sender) = UnixDatagram::unbound() else {
        return false;
    };
    let sent = match bytes.first() {
        Some(b'/') => sender.send_to(state.as_bytes(), socket),
        // '@' names a socket in Linux's abstract namespace (no file). std can address those on
        // Linux only, through `SocketAddrExt`.
        Some(b'@') => send_abstract(&sender, &bytes[1..], state),
        // Relative paths are not valid here, and newer systemd may pass `vsock:…` addresses
        // (to VMs) that a service on the host never sees.
        _ => {
            log::debug!("NOTIFY_SOCKET {:?} is not supported, not notifying", socket);
            return false;
        }
    };
    match sent {
        Ok(_) => true,
        Err(err) => {
            log::debug!("sd_notify to {:?} failed: {}", socket, err);
            false
        }
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn send_abstract(sender: &UnixDatagram, name: &[u8], state: &str) -> std::io::Result<usize> {
    #[cfg(target_os = "android")]
    use std::os::android::net::SocketAddrExt;
    #[cfg(target_os = "linux")]
    use std::os::linux::net::SocketAddrExt;

    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
    sender.send_to_addr(state.as_bytes(), &addr)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn send_abstract(_: &UnixDatagram, _: &[u8], _: &str) -> std::io::Result<usize> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "abstract socket names exist on Linux only",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn receive(socket: &UnixDatagram) -> String {
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0u8; 256];
        let n = socket.recv(&mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn notify_sends_state_to_a_path_socket() {
        let dir = std::env::temp_dir().join(format!("syncto-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let socket = UnixDatagram::bind(&path).unwrap();

        let sent = notify_to(path.as_os_str(), "READY=1");
        let got = receive(&socket);
        let _ = std::fs::remove_dir_all(&dir);
        assert!(sent);
        assert_eq!(got, "READY=1");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn notify_sends_state_to_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        use std::os::unix::net::SocketAddr;

        let name = format!("syncto-test-notify-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let socket = UnixDatagram::bind_addr(&addr).unwrap();

        assert!(notify_to(
            OsStr::new(&format!("@{name}")),
            "STATUS=draining"
        ));
        assert_eq!(receive(&socket), "STATUS=draining");
    }

    #[test]
    fn notify_reports_failure_without_panicking() {
        let missing = std::env::temp_dir().join("syncto-no-such-dir/notify.sock");
        assert!(!notify_to(missing.as_os_str(), "READY=1"));
        assert!(!notify_to(OsStr::new("vsock:2:1234"), "READY=1"));
        assert!(!notify_to(OsStr::new(""), "READY=1"));
    }
}
