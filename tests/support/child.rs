//! Processes a test starts (the `syncto` binary, a copy of it, a shell that execs it): each
//! dies with its test. A failing test drops its [`Child`], which kills and reaps the process;
//! a test process that is killed (a timeout, a mutation run, ^C) unwinds nothing, so every
//! process is also started through `setpriv --pdeathsig KILL`, which has the kernel kill it
//! when the thread that started it ends. Without both, failed and killed runs left servers
//! listening behind them.

use std::ffi::OsStr;
use std::ops::{Deref, DerefMut};
use std::process::Command;

/// The arguments of `setpriv` that make the kernel kill the process it execs when the thread
/// that started it ends. For a shell command that execs the binary itself (after `ulimit`,
/// `prlimit`…): `exec setpriv --pdeathsig KILL …`.
pub const DIE_WITH_TEST: [&str; 2] = ["--pdeathsig", "KILL"];

/// `program` run through `setpriv --pdeathsig KILL` (which execs it: the child's pid, exit
/// status and signals are the program's own).
pub fn command(program: impl AsRef<OsStr>) -> Command {
    let mut c = Command::new("setpriv");
    c.args(DIE_WITH_TEST).arg(program);
    c
}

/// The `syncto` binary as [`command`] runs it, without a `SYNCTO_INI` inherited from the
/// environment.
pub fn syncto() -> Command {
    let mut c = command(env!("CARGO_BIN_EXE_syncto"));
    c.env_remove("SYNCTO_INI");
    c
}

/// A started process, killed and reaped when dropped unless it has already exited (also
/// when the test fails before it stops the process itself). Derefs to the
/// [`std::process::Child`].
#[derive(Debug)]
pub struct Child(std::process::Child);

impl Child {
    /// Starts `command`; it should come from [`command`] or exec `setpriv` with
    /// [`DIE_WITH_TEST`] itself.
    #[track_caller]
    pub fn spawn(command: &mut Command) -> Child {
        let program = command.get_program().to_string_lossy().into_owned();
        Child(
            command
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {program}: {e}")),
        )
    }
}

impl Deref for Child {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        &self.0
    }
}

impl DerefMut for Child {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        &mut self.0
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}
