//! The one error of start-up: a problem that stops the server before it serves.

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
