//! What the process settles before it serves: the one error of start-up (a problem
//! that stops the server before it serves), what to do when the listening socket can't be
//! bound, the open-files limit, and the task limit (the threads the system lets it start),
//! from which the default `max_connections` follows.

use crate::listen::Listen;
use std::fmt;
use std::io::{self, ErrorKind};

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

/// Why the listening socket could not be bound, and what to do about it: the settings
/// and flag that choose the address, and the usual causes.
pub fn cannot_listen(listen: &Listen, e: &io::Error) -> StartupError {
    let choose = "choose the address with `host` and `port` under [server:main], \
                  `--bind HOST:PORT`, or SYNCTO_HOST / SYNCTO_PORT";
    let hint = match (listen, e.kind()) {
        (Listen::Tcp(addr), ErrorKind::AddrInUse) => format!(
            "the address is already in use: another program listens on {addr} (another \
             Syncto, or syncstorage-rs, whose default port is 8000 too; `ss -ltnp` names it); \
             {choose}"
        ),
        (Listen::Tcp(addr), ErrorKind::PermissionDenied) if privileged_port(addr) => format!(
            "ports below 1024 need a privilege this process does not have: listen on a high \
             port (the default is 8000) behind a reverse proxy that serves port 80/443 \
             (nginx, Caddy: see the README), or grant the capability, e.g. in the systemd \
             unit AmbientCapabilities=CAP_NET_BIND_SERVICE and \
             CapabilityBoundingSet=CAP_NET_BIND_SERVICE; {choose}"
        ),
        (Listen::Tcp(_), ErrorKind::AddrNotAvailable) => format!(
            "no network interface of this machine has that address: use 127.0.0.1 (this \
             machine only), 0.0.0.0 or [::] (every interface) or one of its own addresses; \
             {choose}"
        ),
        (Listen::Tcp(_), ErrorKind::PermissionDenied) => {
            format!("permission denied (a security policy refuses the bind); {choose}")
        }
        (Listen::Unix(_), ErrorKind::AddrInUse) => "a server is running on this socket \
             (another Syncto?): stop it, or choose another path with `unix_socket` under \
             [server:main] or `--bind unix:PATH`"
            .to_string(),
        (Listen::Unix(_), ErrorKind::AlreadyExists) => "remove it if it is not needed, or \
             choose another path with `unix_socket` under [server:main] or `--bind unix:PATH`"
            .to_string(),
        (Listen::Unix(path), ErrorKind::PermissionDenied | ErrorKind::NotFound) => format!(
            "the directory {} must exist and be writable by this user (under systemd, \
             RuntimeDirectory=syncto gives the service /run/syncto)",
            path.parent()
                .map_or_else(|| ".".into(), |d| d.display().to_string())
        ),
        (Listen::Tcp(addr), _) if e.raw_os_error().is_none() => format!(
            "{addr} is not an address of this machine: the host must be an IP address or a \
             name that resolves to one; {choose}"
        ),
        _ => return StartupError::new(format!("cannot listen on {listen}: {e}")),
    };
    StartupError::new(format!("cannot listen on {listen}: {e}: {hint}"))
}

/// Whether a `host:port` has a port below 1024 (0 picks a free high one).
fn privileged_port(addr: &str) -> bool {
    addr.rsplit_once(':')
        .and_then(|(_, p)| p.parse::<u16>().ok())
        .is_some_and(|p| (1..1024).contains(&p))
}

/// Threads the process needs besides those of its connections: main,
/// accept, the shedder, up to 16 name lookups, 4 idle connection threads
/// kept for reuse, and the workers.
pub fn fixed_threads(workers: usize) -> u64 {
    (1 + 1 + 1 + 16 + 4 + workers) as u64
}

/// The most connections `tasks` threads can serve: each connection may hold
/// two (its own, and one finishing an answer its client takes slowly), and
/// evicted connections whose threads have not ended yet add up to a quarter
/// of the limit: 2.5 threads a connection.
pub fn connections_for_tasks(tasks: u64, workers: usize) -> u64 {
    tasks.saturating_sub(fixed_threads(workers)) * 2 / 5
}

/// The default `max_connections`. Each connection holds one descriptor, and
/// 64 plus 2 per worker are kept for upstream connections, the listener,
/// logs and statsd: from the open-files limit, at least 16 and at most 1024.
/// When the process may start only `tasks` more threads (see
/// [`task_limit`]), no more than those can serve (at least 4).
pub(crate) fn default_max_connections(
    open_files: u64,
    tasks: Option<u64>,
    workers: usize,
) -> usize {
    let reserve = 64 + 2 * workers as u64;
    let by_files = open_files.saturating_sub(reserve).clamp(16, 1024);
    let by_tasks = tasks.map_or(u64::MAX, |t| connections_for_tasks(t, workers).max(4));
    by_files.min(by_tasks) as usize
}

/// How many more tasks (threads) the process may start, when something
/// limits it: the least of what `RLIMIT_NPROC` leaves to its user (every
/// process and thread of the user counts; not enforced for root or with
/// CAP_SYS_ADMIN or CAP_SYS_RESOURCE) and what the pids cgroup controller
/// (systemd's `TasksMax`) leaves to its cgroup and each cgroup above it.
/// None when nothing limits it.
pub fn task_limit() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let nproc = match rlimit::Resource::NPROC.get() {
        Ok((soft, _)) if soft != rlimit::INFINITY && !nproc_exempt(&status) => {
            let uid = status_field(&status, "Uid:").unwrap_or(u64::MAX);
            Some(soft.saturating_sub(user_tasks(uid)))
        }
        _ => None,
    };
    let cgroup = std::fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|c| cgroup_room(&c, std::path::Path::new("/sys/fs/cgroup")));
    match (nproc, cgroup) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The first number of a `/proc/*/status` field (`Uid:` gives the real uid).
fn status_field(status: &str, name: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Whether `RLIMIT_NPROC` is not enforced: real uid 0, or CAP_SYS_ADMIN (21)
/// or CAP_SYS_RESOURCE (24) in the effective set.
fn nproc_exempt(status: &str) -> bool {
    let caps = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    status_field(status, "Uid:") == Some(0) || caps & (1 << 21 | 1 << 24) != 0
}

/// Threads of every process whose real uid is `uid`.
fn user_tasks(uid: u64) -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("status")).ok())
        .filter(|s| status_field(s, "Uid:") == Some(uid))
        .map(|s| status_field(&s, "Threads:").unwrap_or(1))
        .sum()
}

/// What the pids controller leaves to the cgroup of `proc_cgroup` (the text
/// of `/proc/self/cgroup`) and its ancestors, under `root` (cgroup v2, or v1's
/// `pids` hierarchy): the least `pids.max - pids.current`. None without a
/// limit.
fn cgroup_room(proc_cgroup: &str, root: &std::path::Path) -> Option<u64> {
    let mut dirs = Vec::new();
    for line in proc_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let base = match controllers {
            "" => root.to_path_buf(),
            c if c.split(',').any(|c| c == "pids") => root.join("pids"),
            _ => continue,
        };
        let mut dir = base.join(path.trim_start_matches('/'));
        loop {
            dirs.push(dir.clone());
            if dir == base || !dir.pop() {
                break;
            }
        }
    }
    dirs.iter()
        .filter_map(|d| {
            let max = std::fs::read_to_string(d.join("pids.max")).ok()?;
            let max: u64 = max.trim().parse().ok()?; // "max": no limit here
            let current = std::fs::read_to_string(d.join("pids.current"))
                .ok()
                .and_then(|c| c.trim().parse::<u64>().ok())
                .unwrap_or(0);
            Some(max.saturating_sub(current))
        })
        .min()
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

    fn message(listen: &str, kind: ErrorKind) -> String {
        let listen: Listen = listen.parse().unwrap();
        cannot_listen(&listen, &io::Error::from(kind)).message
    }

    #[test]
    fn bind_failures_say_what_to_do() {
        let m = message("127.0.0.1:8000", ErrorKind::AddrInUse);
        assert!(m.starts_with("cannot listen on 127.0.0.1:8000: "), "{m}");
        for needle in [
            "already in use",
            "syncstorage-rs",
            "`port`",
            "[server:main]",
            "--bind",
        ] {
            assert!(m.contains(needle), "{needle}: {m}");
        }
        let m = message("0.0.0.0:80", ErrorKind::PermissionDenied);
        for needle in [
            "below 1024",
            "reverse proxy",
            "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        ] {
            assert!(m.contains(needle), "{needle}: {m}");
        }
        let m = message("0.0.0.0:8080", ErrorKind::PermissionDenied);
        assert!(!m.contains("below 1024") && m.contains("--bind"), "{m}");
        let m = message("192.0.2.1:8000", ErrorKind::AddrNotAvailable);
        assert!(
            m.contains("no network interface") && m.contains("127.0.0.1"),
            "{m}"
        );
        let m = message("unix:/run/nowhere/s.sock", ErrorKind::PermissionDenied);
        assert!(
            m.contains("/run/nowhere must exist") && m.contains("RuntimeDirectory"),
            "{m}"
        );
        let listen: Listen = "no-such-host.invalid:8000".parse().unwrap();
        // What the standard library gives for a name that does not resolve.
        let e = io::Error::other("failed to lookup address information: Name or service not known");
        let m = cannot_listen(&listen, &e).message;
        assert!(m.contains("not an address of this machine"), "{m}");
    }

    #[test]
    fn max_connections_follows_the_open_files_limit() {
        assert_eq!(default_max_connections(1024, None, 4), 952);
        assert_eq!(default_max_connections(20_000, None, 4), 1024);
        assert_eq!(default_max_connections(100, None, 8), 20);
        assert_eq!(default_max_connections(90, None, 8), 16);
        assert_eq!(default_max_connections(0, None, 1), 16);
    }

    #[test]
    fn max_connections_follows_the_task_limit() {
        // 4 workers: 27 threads of its own; 2.5 threads a connection.
        assert_eq!(fixed_threads(4), 27);
        assert_eq!(default_max_connections(1024, Some(1027), 4), 400);
        assert_eq!(default_max_connections(1024, Some(100_000), 4), 952);
        assert_eq!(default_max_connections(100_000, Some(4096), 4), 1024);
        // 42 tasks left with 4 workers: 6 connections; never below 4.
        assert_eq!(default_max_connections(1024, Some(42), 4), 6);
        assert_eq!(default_max_connections(1024, Some(10), 4), 4);
        // Whatever the limit, the threads it allows are enough.
        for tasks in [40, 64, 100, 1000, 5000] {
            let n = default_max_connections(1 << 20, Some(tasks), 4) as u64;
            let slack = (n / 4).clamp(1, 64);
            assert!(
                fixed_threads(4) + 2 * (n + slack) <= tasks.max(36),
                "{tasks}: {n}"
            );
        }
    }

    #[test]
    fn the_pids_cgroup_limit_counts_every_level() {
        let root = std::env::temp_dir().join(format!("syncto-cgroup-{}", std::process::id()));
        let write = |dir: &std::path::Path, max: &str, current: &str| {
            std::fs::create_dir_all(dir).unwrap();
            std::fs::write(dir.join("pids.max"), max).unwrap();
            std::fs::write(dir.join("pids.current"), current).unwrap();
        };
        // v2: the unit allows 500 and uses 20, its slice 300 and uses 250.
        write(&root, "max\n", "900\n");
        write(&root.join("system.slice"), "300\n", "250\n");
        write(&root.join("system.slice/syncto.service"), "500\n", "20\n");
        let v2 = "0::/system.slice/syncto.service\n";
        assert_eq!(cgroup_room(v2, &root), Some(50));
        // v1: only the pids hierarchy counts.
        write(&root.join("pids/docker/abc"), "100\n", "7\n");
        let v1 = "12:memory:/docker/abc\n8:pids:/docker/abc\n";
        assert_eq!(cgroup_room(v1, &root), Some(93));
        // No limit anywhere.
        assert_eq!(cgroup_room("0::/\n", &root.join("nowhere")), None);
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn root_and_capabilities_escape_nproc() {
        let status =
            |uid: u32, caps: &str| format!("Uid:\t{uid}\t{uid}\t{uid}\t{uid}\nCapEff:\t{caps}\n");
        assert!(nproc_exempt(&status(0, "0000000000000000")));
        assert!(nproc_exempt(&status(1000, "0000000001000000")));
        assert!(nproc_exempt(&status(1000, "0000000000200000")));
        assert!(!nproc_exempt(&status(1000, "0000000000000000")));
        assert_eq!(status_field(&status(65534, "0"), "Uid:"), Some(65534));
    }
}
