//! StatsD counters and timers over UDP (`statsd_url`), hand-written.
//!
//! The StatsD line protocol is one datagram per metric, `<prefix>.<key>:<value>|<type>`. The
//! keys are those of the original Syncto, so existing dashboards keep working:
//! `tokenserver.tokenserverclient.get_hawk_credentials`, `syncclient.syncclient.<call>`,
//! `syncclient.status_code.<n>`, `view.<service>.<METHOD>`, `syncclient.start_time`,
//! `syncclient.syncclient.auth`, `authn_type.<scheme>` and the `users` set.
//!
//! StatsD is best effort and must never slow a request down: the socket is connected once at
//! start-up and non-blocking, each metric is a single `send`, and send errors (no listener,
//! full buffer) are dropped. A disabled [`Metrics`] does nothing and allocates nothing.

use std::fmt::{self, Write as _};
use std::io;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A cheap-to-clone handle that sends metrics to StatsD, or nowhere when disabled.
#[derive(Clone, Default)]
pub struct Metrics {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    socket: UdpSocket,
    /// Prepended with a dot to every key; empty means no prefix.
    prefix: String,
}

impl Metrics {
    /// A handle that sends nothing (no `statsd_url` configured).
    pub fn disabled() -> Metrics {
        Metrics { inner: None }
    }

    /// Sends metrics to `addr` (`"host:port"`, as validated by the config), every key prefixed
    /// with `prefix` and a dot (Syncto uses its project name, `"syncto"`).
    ///
    /// The host is resolved once, here. An error is a start-up error: an unresolvable host or
    /// no socket available.
    pub fn udp(addr: &str, prefix: &str) -> io::Result<Metrics> {
        let target = addr.to_socket_addrs()?.next().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("statsd host {addr:?} resolves to no address"),
            )
        })?;
        let local = match target {
            SocketAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
            SocketAddr::V6(_) => SocketAddr::from(([0u16; 8], 0)),
        };
        let socket = UdpSocket::bind(local)?;
        // Connected: each metric is a plain `send`, and datagrams from anyone else are dropped.
        socket.connect(target)?;
        socket.set_nonblocking(true)?;
        let prefix = prefix.trim_end_matches('.').to_owned();
        Ok(Metrics {
            inner: Some(Arc::new(Inner { socket, prefix })),
        })
    }

    /// Whether metrics are sent anywhere.
    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Counts one occurrence: `<prefix>.<key>:1|c`.
    pub fn incr(&self, key: &str) {
        self.send(key, 1, "c");
    }

    /// Records a duration in whole milliseconds: `<prefix>.<key>:<ms>|ms`.
    pub fn timing(&self, key: &str, duration: Duration) {
        self.send(key, duration.as_millis(), "ms");
    }

    /// Records a duration in milliseconds with microsecond precision (`0.012|ms`), for steps
    /// that take well under a millisecond.
    pub fn timing_fine(&self, key: &str, duration: Duration) {
        let micros = duration.as_micros();
        self.send(
            key,
            format_args!("{}.{:03}", micros / 1000, micros % 1000),
            "ms",
        );
    }

    /// Adds `value` to a StatsD set, which counts distinct values per flush interval:
    /// `<prefix>.<key>:<value>|s`. `value` must be safe to publish (say, a keyed hash).
    pub fn set(&self, key: &str, value: &str) {
        if value.contains(|c: char| c == ':' || c == '|' || c == '@' || c.is_whitespace()) {
            return;
        }
        self.send(key, value, "s");
    }

    /// Runs `f` and records how long it took under `key`.
    pub fn time<T>(&self, key: &str, f: impl FnOnce() -> T) -> T {
        if !self.is_enabled() {
            return f();
        }
        let start = Instant::now();
        let out = f();
        self.timing(key, start.elapsed());
        out
    }

    fn send(&self, key: &str, value: impl fmt::Display, kind: &str) {
        let Some(inner) = &self.inner else {
            return;
        };
        let mut line = String::with_capacity(inner.prefix.len() + key.len() + 16);
        if !inner.prefix.is_empty() {
            line.push_str(&inner.prefix);
            line.push('.');
        }
        // ':' '|' '@' and whitespace are the protocol's separators: a key carrying one (say, a
        // strange method name in `view.<service>.<METHOD>`) would corrupt the line.
        line.extend(key.chars().map(|c| match c {
            ':' | '|' | '@' => '_',
            c if c.is_whitespace() || c.is_control() => '_',
            c => c,
        }));
        line.push(':');
        // Writing to a String cannot fail.
        let _ = write!(line, "{value}|{kind}");
        // Best effort: an absent listener (ECONNREFUSED) or a full buffer (EWOULDBLOCK) only
        // loses this metric.
        let _ = inner.socket.send(line.as_bytes());
    }
}

/// The method part of `view.<service>.<METHOD>`: the standard HTTP methods
/// by name, anything else (`X1`, `A.B.C.D.E`) as `OTHER`, so that clients
/// cannot create metrics (or nest names) by making methods up.
pub fn method_name(method: &str) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT",
    ];
    KNOWN
        .iter()
        .find(|m| m.eq_ignore_ascii_case(method))
        .copied()
        .unwrap_or("OTHER")
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            None => f.write_str("Metrics(disabled)"),
            Some(inner) => f
                .debug_struct("Metrics")
                .field("peer", &inner.socket.peer_addr().ok())
                .field("prefix", &inner.prefix)
                .finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A StatsD stand-in and a `Metrics` pointed at it.
    fn listener(prefix: &str) -> (UdpSocket, Metrics) {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let metrics = Metrics::udp(&server.local_addr().unwrap().to_string(), prefix).unwrap();
        (server, metrics)
    }

    fn recv(server: &UdpSocket) -> String {
        let mut buf = [0u8; 512];
        let n = server.recv(&mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn counters_and_timers_use_the_statsd_line_format() {
        let (server, metrics) = listener("syncto");
        assert!(metrics.is_enabled());

        metrics.incr("syncclient.status_code.304");
        assert_eq!(recv(&server), "syncto.syncclient.status_code.304:1|c");

        metrics.timing(
            "tokenserver.tokenserverclient.get_hawk_credentials",
            Duration::from_micros(1_234_999),
        );
        assert_eq!(
            recv(&server),
            "syncto.tokenserver.tokenserverclient.get_hawk_credentials:1234|ms"
        );

        let clone = metrics.clone();
        clone.incr("view.records.GET");
        assert_eq!(recv(&server), "syncto.view.records.GET:1|c");
    }

    #[test]
    fn time_returns_the_value_and_sends_a_timer() {
        let (server, metrics) = listener("syncto");
        let value = metrics.time("syncclient.syncclient.get_records", || 42);
        assert_eq!(value, 42);
        let line = recv(&server);
        let ms = line
            .strip_prefix("syncto.syncclient.syncclient.get_records:")
            .and_then(|rest| rest.strip_suffix("|ms"))
            .unwrap_or_else(|| panic!("unexpected line {line:?}"));
        assert!(ms.parse::<u64>().is_ok(), "{line:?}");
    }

    #[test]
    fn separators_in_keys_are_neutralised_and_prefix_is_optional() {
        let (server, metrics) = listener("");
        metrics.incr("view.batch.P:O|S@T X\n");
        assert_eq!(recv(&server), "view.batch.P_O_S_T_X_:1|c");

        let (server, metrics) = listener("syncto.");
        metrics.incr("view.hello.GET");
        assert_eq!(recv(&server), "syncto.view.hello.GET:1|c");
    }

    #[test]
    fn sets_and_fine_timers() {
        let (server, metrics) = listener("syncto");
        metrics.set("users", "0123abcd");
        assert_eq!(recv(&server), "syncto.users:0123abcd|s");
        metrics.timing_fine("syncclient.start_time", Duration::from_nanos(12_345));
        assert_eq!(recv(&server), "syncto.syncclient.start_time:0.012|ms");
        metrics.timing_fine(
            "syncclient.syncclient.auth",
            Duration::from_micros(2_001_500),
        );
        assert_eq!(
            recv(&server),
            "syncto.syncclient.syncclient.auth:2001.500|ms"
        );
        // A value that would corrupt the line is dropped, not sent.
        metrics.set("users", "a|c");
        metrics.incr("after");
        assert_eq!(recv(&server), "syncto.after:1|c");
    }

    #[test]
    fn unknown_methods_are_one_name() {
        assert_eq!(method_name("GET"), "GET");
        assert_eq!(method_name("delete"), "DELETE");
        assert_eq!(method_name("OPTIONS"), "OPTIONS");
        for made_up in ["X1", "A.B.C.D.E", "BREW", "", "GET ", "GETS"] {
            assert_eq!(method_name(made_up), "OTHER", "{made_up:?}");
        }
    }

    #[test]
    fn disabled_sends_nothing_but_still_runs_timed_code() {
        let metrics = Metrics::disabled();
        assert!(!metrics.is_enabled());
        metrics.incr("view.hello.GET");
        metrics.timing("view.hello.GET", Duration::from_secs(1));
        assert_eq!(metrics.time("x", || "ran"), "ran");
        assert_eq!(format!("{metrics:?}"), "Metrics(disabled)");
    }

    #[test]
    fn send_errors_are_ignored_and_metrics_flow_again_when_statsd_is_back() {
        // Nobody listens on this port any more: Linux answers with ICMP "port unreachable",
        // and the next send on the connected socket fails with ECONNREFUSED.
        let (server, metrics) = listener("syncto");
        let addr = server.local_addr().unwrap();
        drop(server);
        for _ in 0..3 {
            metrics.incr("view.hello.GET");
            metrics.timing("view.hello.GET", Duration::from_millis(5));
            assert_eq!(metrics.time("view.x", || "ran"), "ran");
        }
        // StatsD restarts on the same port: the same handle reaches it. The socket holds at
        // most one refusal not reported yet, which costs the next send its metric.
        let server = UdpSocket::bind(addr).unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        metrics.incr("view.a.GET");
        metrics.incr("view.b.GET");
        let got = recv(&server);
        assert!(
            ["syncto.view.a.GET:1|c", "syncto.view.b.GET:1|c"].contains(&got.as_str()),
            "{got}"
        );
    }

    #[test]
    fn bad_addresses_are_start_up_errors() {
        assert!(Metrics::udp("localhost", "syncto").is_err());
        assert!(Metrics::udp("127.0.0.1:notaport", "syncto").is_err());
    }
}
