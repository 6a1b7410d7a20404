//! Whether stderr is the journal. systemd sets `$JOURNAL_STREAM` to `DEVICE:INODE` of the
//! stream it connected a service's stdout/stderr to, and documents that a program should
//! compare it with its own stderr before it believes it: the variable is inherited by
//! children whose stderr may go elsewhere (a shell started from the service, a redirect).
//! The check is an fstat of file descriptor 2, through a duplicate of it, with `std` only.

use std::ffi::OsStr;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;

/// `$JOURNAL_STREAM` names the device and inode of this process's stderr.
pub(super) fn stderr_is_journal() -> bool {
    names(
        std::env::var_os("JOURNAL_STREAM").as_deref(),
        stderr_identity(),
    )
}

/// The (device, inode) of stderr, if it can be had.
fn stderr_identity() -> Option<(u64, u64)> {
    let fd = std::io::stderr().as_fd().try_clone_to_owned().ok()?;
    let meta = std::fs::File::from(fd).metadata().ok()?;
    Some((meta.dev(), meta.ino()))
}

/// Whether `var` (`DEVICE:INODE`, both decimal) names `identity`.
pub(super) fn names(var: Option<&OsStr>, identity: Option<(u64, u64)>) -> bool {
    let parsed = var
        .and_then(OsStr::to_str)
        .and_then(|v| v.split_once(':'))
        .and_then(|(dev, ino)| Some((dev.parse::<u64>().ok()?, ino.parse::<u64>().ok()?)));
    matches!((parsed, identity), (Some(a), Some(b)) if a == b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    #[test]
    fn only_the_device_and_inode_of_stderr_count() {
        let file = std::fs::File::open("Cargo.toml").unwrap();
        let meta = file.metadata().unwrap();
        let me = Some((meta.dev(), meta.ino()));
        let var = OsString::from(format!("{}:{}", meta.dev(), meta.ino()));
        assert!(names(Some(&var), me));
        let other = OsString::from(format!("{}:{}", meta.dev(), meta.ino() + 1));
        assert!(!names(Some(&other), me));
        for bad in ["", "1", ":", "a:b", "1:2:3", " 1:2"] {
            assert!(!names(Some(OsStr::new(bad)), Some((1, 2))), "{bad:?}");
        }
        assert!(!names(None, me));
        assert!(!names(Some(&var), None));
    }
}
