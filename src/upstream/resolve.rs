//! Upstream name resolution: IP literals without a lookup, names from a
//! short-lived cache, and every lookup bounded by the call's deadline.
//!
//! ureq asks its resolver before every request, pooled connection or not.
//! Its default resolver runs getaddrinfo on the calling thread when the call
//! has no deadline (a lookup that hangs then holds the worker for as long as
//! the system resolver likes) and on a new thread per request when it has one
//! (twice the CPU per request). Here:
//!
//! - an IP literal (`127.0.0.1`, `[::1]`) is used as is;
//! - `localhost` is 127.0.0.1 then ::1, without asking the system: plain `http://` is
//!   allowed to it as the loopback interface, so it must never be whatever an `/etc/hosts`
//!   line, an NSS module or a DNS search domain makes of it;
//! - a name looked up successfully is reused for [`RESOLVE_TTL`], as curl does;
//! - a miss starts one lookup on its own thread; callers wait for it at most
//!   until their deadline, and concurrent misses for one name share it, so a
//!   DNS server that never answers costs one thread per name, not one per
//!   request. At most [`MAX_LOOKUPS`] lookups run at once; past that a miss
//!   fails at once. Failures are not cached: the next request asks again.

use crate::concurrency::{Flight, lock};
use crate::endpoint::is_loopback_host;
use crate::time_limits::RESOLVE_TTL;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;
use ureq::unversioned::transport::time::Duration as UDuration;

/// Lookups running at once, all names together.
pub const MAX_LOOKUPS: usize = 16;
/// Names remembered; past that, the oldest answers are forgotten first.
const MAX_NAMES: usize = 256;
/// Addresses kept per name (ureq's own limit).
const MAX_ADDRS: usize = 16;

/// The resolver of the shared agent. Clones share the cache.
#[derive(Debug, Clone, Default)]
pub struct CachingResolver {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    /// `host:port` → answer or lookup in progress.
    names: HashMap<String, Slot>,
    /// Lookup threads running.
    lookups: usize,
}

#[derive(Debug)]
enum Slot {
    Ready {
        addrs: Vec<SocketAddr>,
        expires: Instant,
    },
    Pending(Arc<Lookup>),
}

/// One lookup in progress, landing with the addresses (empty: the name does
/// not resolve). Every critical section of the state is a lookup, insert or
/// remove: a panic cannot leave the map half-updated.
type Lookup = Flight<Vec<SocketAddr>>;

impl CachingResolver {
    /// Names currently remembered or being looked up.
    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.state).names.len()
    }

    /// Whether nothing is remembered.
    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Lookup threads running now.
    #[cfg(test)]
    fn lookups(&self) -> usize {
        lock(&self.state).lookups
    }

    /// The addresses of `host:port`, waiting at most `wait` for a lookup.
    fn addresses(&self, name: String, wait: Option<Duration>) -> Result<Vec<SocketAddr>, Miss> {
        let lookup = {
            let mut st = lock(&self.state);
            match st.names.get(&name) {
                Some(Slot::Ready { addrs, expires }) if *expires > Instant::now() => {
                    return Ok(addrs.clone());
                }
                Some(Slot::Pending(l)) => Arc::clone(l),
                _ => {
                    if st.lookups >= MAX_LOOKUPS {
                        return Err(Miss::Busy);
                    }
                    make_room(&mut st.names);
                    let l = Arc::new(Lookup::default());
                    let spawned = std::thread::Builder::new().name("resolve".into()).spawn({
                        let (state, name, l) = (Arc::clone(&self.state), name.clone(), l.clone());
                        move || run_lookup(&state, name, &l)
                    });
                    if spawned.is_err() {
                        return Err(Miss::Busy);
                    }
                    st.lookups += 1;
                    st.names.insert(name, Slot::Pending(Arc::clone(&l)));
                    l
                }
            }
        };
        match lookup.wait(wait) {
            None => Err(Miss::Late),
            Some(addrs) if addrs.is_empty() => Err(Miss::NotFound),
            Some(addrs) => Ok(addrs),
        }
    }
}

/// Why no address came back.
enum Miss {
    NotFound,
    Late,
    Busy,
}

/// Forget expired answers; if the map is still full, forget every answer
/// (lookups in progress stay: they are bounded by [`MAX_LOOKUPS`]).
fn make_room(names: &mut HashMap<String, Slot>) {
    if names.len() < MAX_NAMES {
        return;
    }
    let now = Instant::now();
    names.retain(|_, s| match s {
        Slot::Ready { expires, .. } => *expires > now,
        Slot::Pending(_) => true,
    });
    if names.len() >= MAX_NAMES {
        names.retain(|_, s| matches!(s, Slot::Pending(_)));
    }
}

fn run_lookup(state: &Mutex<State>, name: String, lookup: &Lookup) {
    let addrs: Vec<SocketAddr> = name
        .to_socket_addrs()
        .map(|a| a.take(MAX_ADDRS).collect())
        .unwrap_or_default();
    {
        let mut st = lock(state);
        st.lookups = st.lookups.saturating_sub(1);
        if addrs.is_empty() {
            st.names.remove(&name);
        } else {
            let ready = Slot::Ready {
                addrs: addrs.clone(),
                expires: Instant::now() + RESOLVE_TTL,
            };
            st.names.insert(name, ready);
        }
    }
    lookup.land(addrs);
}

/// Host (brackets removed) and port of an absolute http(s) URI.
fn host_port(uri: &Uri) -> Result<(&str, u16), ureq::Error> {
    let bad = |why: &str| ureq::Error::BadUri(why.to_owned());
    let authority = uri.authority().ok_or_else(|| bad("no host"))?;
    let default = match uri.scheme_str() {
        Some("https") => 443,
        Some("http") => 80,
        _ => return Err(bad("unsupported scheme")),
    };
    let host = authority.host();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() {
        return Err(bad("no host"));
    }
    Ok((host, authority.port_u16().unwrap_or(default)))
}

impl Resolver for CachingResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let (host, port) = host_port(uri)?;
        let addrs = match host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) if is_loopback_host(host) => vec![
                SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port),
                SocketAddr::new(Ipv6Addr::LOCALHOST.into(), port),
            ],
            Err(_) => {
                let wait = match timeout.after {
                    UDuration::Exact(d) => Some(d),
                    UDuration::NotHappening => None,
                };
                match self.addresses(format!("{host}:{port}"), wait) {
                    Ok(addrs) => addrs,
                    Err(Miss::NotFound) => return Err(ureq::Error::HostNotFound),
                    Err(Miss::Late) => return Err(ureq::Error::Timeout(timeout.reason)),
                    Err(Miss::Busy) => {
                        let e = std::io::Error::other("too many name lookups in progress");
                        return Err(ureq::Error::Io(e));
                    }
                }
            }
        };
        let family = config.ip_family();
        let mut out = self.empty();
        for addr in family.keep_wanted(addrs.into_iter()).take(MAX_ADDRS) {
            out.push(addr);
        }
        if out.is_empty() {
            return Err(ureq::Error::HostNotFound);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ureq::Timeout;

    fn timeout(ms: u64) -> NextTimeout {
        NextTimeout {
            after: UDuration::from_millis(ms),
            reason: Timeout::Resolve,
            ..NextTimeout::default()
        }
    }

    fn resolve(r: &CachingResolver, url: &str, ms: u64) -> Result<Vec<SocketAddr>, ureq::Error> {
        let uri: Uri = url.parse().unwrap();
        let got = r.resolve(&uri, &Config::default(), timeout(ms))?;
        Ok((0..got.len()).map(|i| got[i]).collect())
    }

    #[test]
    fn literals_need_no_lookup() {
        let r = CachingResolver::default();
        let v4 = resolve(&r, "http://127.0.0.1:8080/x", 1000).unwrap();
        assert_eq!(v4, vec!["127.0.0.1:8080".parse().unwrap()]);
        let v6 = resolve(&r, "https://[::1]/x", 1000).unwrap();
        assert_eq!(v6, vec!["[::1]:443".parse().unwrap()]);
        assert!(r.is_empty(), "a literal is never cached or looked up");
        assert_eq!(r.lookups(), 0);
    }

    #[test]
    fn localhost_is_the_loopback_interface_without_a_lookup() {
        let r = CachingResolver::default();
        // Whatever the system would answer (a stale cache entry included): plain http is
        // allowed to `localhost` because it is the loopback interface.
        lock(&r.state).names.insert(
            "localhost:9".into(),
            Slot::Ready {
                addrs: vec!["192.0.2.1:9".parse().unwrap()],
                expires: Instant::now() + RESOLVE_TTL,
            },
        );
        let expected: Vec<SocketAddr> =
            vec!["127.0.0.1:9".parse().unwrap(), "[::1]:9".parse().unwrap()];
        for url in ["http://localhost:9/x", "http://LocalHost:9/y"] {
            assert_eq!(resolve(&r, url, 0).unwrap(), expected, "{url}");
        }
        assert_eq!(r.lookups(), 0);
    }

    #[test]
    fn a_name_looked_up_is_reused_without_a_wait() {
        let r = CachingResolver::default();
        let addrs = vec!["192.0.2.7:9".parse().unwrap()];
        lock(&r.state).names.insert(
            "cached.example:9".into(),
            Slot::Ready {
                addrs: addrs.clone(),
                expires: Instant::now() + RESOLVE_TTL,
            },
        );
        assert_eq!(resolve(&r, "http://cached.example:9/x", 0).unwrap(), addrs);
        assert_eq!(r.lookups(), 0);
    }

    #[test]
    fn unknown_names_fail_and_are_not_cached() {
        let r = CachingResolver::default();
        // Either the resolver says "no such name" or, with no DNS at all,
        // the wait runs out: both are failures, neither leaves an entry.
        let err = resolve(&r, "https://no-such-host.invalid/", 3000).unwrap_err();
        assert!(
            matches!(err, ureq::Error::HostNotFound | ureq::Error::Timeout(_)),
            "{err:?}"
        );
        let waited = Instant::now();
        while r.lookups() > 0 && waited.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!((r.len(), r.lookups()), (0, 0));
    }

    #[test]
    fn a_slow_lookup_is_shared_and_bounded_by_the_deadline() {
        let r = CachingResolver::default();
        // A lookup in progress that never finishes, as with a silent DNS
        // server: callers give up at their deadline and start no thread.
        let stuck = Arc::new(Lookup::default());
        lock(&r.state)
            .names
            .insert("slow.example:443".into(), Slot::Pending(Arc::clone(&stuck)));
        let started = Instant::now();
        let err = resolve(&r, "https://slow.example/", 200).unwrap_err();
        assert!(
            matches!(err, ureq::Error::Timeout(Timeout::Resolve)),
            "{err:?}"
        );
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert_eq!(
            r.lookups(),
            0,
            "no new lookup for a name already being looked up"
        );
        // When it completes, waiters get its answer.
        let waiter = {
            let r = r.clone();
            std::thread::spawn(move || resolve(&r, "https://slow.example/", 10_000))
        };
        std::thread::sleep(Duration::from_millis(50));
        stuck.land(vec!["192.0.2.1:443".parse().unwrap()]);
        assert_eq!(
            waiter.join().unwrap().unwrap(),
            vec!["192.0.2.1:443".parse().unwrap()]
        );
    }

    #[test]
    fn too_many_lookups_fail_at_once() {
        let r = CachingResolver::default();
        lock(&r.state).lookups = MAX_LOOKUPS;
        let err = resolve(&r, "https://other.example/", 5000).unwrap_err();
        assert!(matches!(err, ureq::Error::Io(_)), "{err:?}");
        assert!(r.is_empty());
    }

    #[test]
    fn the_cache_is_bounded() {
        let mut names = HashMap::new();
        let now = Instant::now();
        for i in 0..MAX_NAMES {
            let expires = if i % 2 == 0 { now } else { now + RESOLVE_TTL };
            names.insert(
                format!("h{i}:443"),
                Slot::Ready {
                    addrs: vec![],
                    expires,
                },
            );
        }
        make_room(&mut names);
        assert_eq!(names.len(), MAX_NAMES / 2, "expired answers go first");
        for i in 0..MAX_NAMES {
            names.insert(format!("p{i}:443"), Slot::Pending(Arc::default()));
        }
        make_room(&mut names);
        assert_eq!(names.len(), MAX_NAMES, "only lookups in progress stay");
    }
}
