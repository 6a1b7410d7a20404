//! What the process settles before it serves: the one error of start-up (a problem
//! that stops the server before it serves) and the open-files limit.

use std::fmt;

/// A configuration problem that stops the server before it serves (exit status 1).
#[derive(Debug)]
pub struct StartupError {
    /// The complete message, already naming the file and line or the variable.
    pub message: String,
}

impl StartupError {
    /// Wraps a message.
    pub fn new(message: impl Into<String>) -> StartupError {
        StartupError {
            message: message.into(),
        }
    }
}

impl fmt::Display for StartupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StartupError {}

/// The default `max_connections`: each connection holds one descriptor,
/// and 64 plus 2 per worker are kept for upstream connections, the
/// listener, logs and statsd. At least 16; at most 1024, since each
/// connection also holds a thread.
pub(crate) fn default_max_connections(open_files: u64, workers: usize) -> usize {
    let reserve = 64 + 2 * workers as u64;
    open_files.saturating_sub(reserve).clamp(16, 1024) as usize
}

/// The soft open-files limit (1024 if it can't be read).
pub(crate) fn open_files_limit() -> u64 {
    rlimit::Resource::NOFILE
        .get()
        .map_or(1024, |(soft, _)| soft)
}

/// The open-files limits of the process, for the start-up log.
pub struct OpenFiles {
    /// Soft limit before [`raise_open_files_limit`].
    pub before: u64,
    /// Soft limit now.
    pub soft: u64,
    /// Hard limit.
    pub hard: u64,
    /// Why raising failed, if it did.
    pub error: Option<String>,
}

impl fmt::Display for OpenFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |n: u64| {
            if n == rlimit::INFINITY {
                "unlimited".to_string()
            } else {
                n.to_string()
            }
        };
        write!(f, "open files limit {}", show(self.soft))?;
        if self.before != self.soft {
            write!(f, " (raised from {})", show(self.before))?;
        }
        write!(f, ", hard limit {}", show(self.hard))?;
        if let Some(e) = &self.error {
            write!(f, "; cannot raise the soft limit: {e}")?;
        }
        Ok(())
    }
}

/// Raise the soft open-files limit to the hard one: every connection costs
/// a descriptor, and services often start with a soft limit of 1024 and a
/// much higher hard one.
pub fn raise_open_files_limit() -> OpenFiles {
    let nofile = rlimit::Resource::NOFILE;
    let (before, hard) = match nofile.get() {
        Ok(limits) => limits,
        Err(e) => {
            return OpenFiles {
                before: 0,
                soft: 0,
                hard: 0,
                error: Some(e.to_string()),
            };
        }
    };
    // An unlimited hard limit is not a valid soft limit for descriptors.
    let target = if hard == rlimit::INFINITY {
        1 << 20
    } else {
        hard
    };
    let mut files = OpenFiles {
        before,
        soft: before,
        hard,
        error: None,
    };
    if before < target {
        match nofile.set(target, hard) {
            Ok(()) => files.soft = target,
            Err(e) => files.error = Some(e.to_string()),
        }
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_connections_follows_the_open_files_limit() {
        assert_eq!(default_max_connections(1024, 4), 952);
        assert_eq!(default_max_connections(20_000, 4), 1024);
        assert_eq!(default_max_connections(100, 8), 20);
        assert_eq!(default_max_connections(90, 8), 16);
        assert_eq!(default_max_connections(0, 1), 16);
    }
}
