//! How many Token Server refusals one client address may cause: made-up tokens must not
//! turn Syncto into a free way to call the Token Server (which rate-limits the instance,
//! and with it every user).
//!
//! Each refusal of a credential by the Token Server (a 4xx other than 429: the token or key
//! id is bad) is charged to the client's address; an address may be charged
//! `token_refusals_per_minute` in any minute (a burst of that many, then one more every
//! `60 s / n`). Past it, a request from that address that needs a Token Server exchange is
//! answered 429 with `Retry-After` instead, until the budget allows one again. What is
//! never held back:
//!
//! - a user whose credentials are cached (or already in flight, or refused a moment ago):
//!   no exchange is needed, so no budget is asked;
//! - a user known to work: one whose credentials the Token Server accepted in the last
//!   [`USER_KNOWN_TO_WORK_FOR`] (from any address), so a user whose token works gets a new one exchanged
//!   even from an address that others spend on made-up tokens. A refusal for a known user
//!   ends that (the next made-up token for the same key id is charged and held back);
//! - faults (5xx, 429, timeouts): they say nothing about the credential.
//!
//! IPv6 addresses are counted by /64, what one host usually gets. Requests without an
//! address (a unix socket peer with no trusted proxy) share one budget. Memory is bounded:
//! at most [`MAX_ADDRESSES`] addresses and [`MAX_KNOWN`] users, the least recently used
//! forgotten first (an address forgotten gets a full budget again).

use crate::concurrency::lock;
use crate::time_limits::USER_KNOWN_TO_WORK_FOR;
use lru::LruCache;
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Addresses whose refusals are counted at once.
pub const MAX_ADDRESSES: usize = 4096;
/// Users known to work, remembered at once.
pub const MAX_KNOWN: usize = 4096;
/// The window the setting counts refusals in.
const WINDOW: Duration = Duration::from_secs(60);

/// A user, as [`crate::credentials::Cache::user_id`] names it (keyed, never the key id).
pub type UserId = [u8; 16];

/// The refusals charged to each address, and the users known to work.
pub struct TokenBudget {
    /// Time each refusal costs: `WINDOW / per_minute`; None: no limit.
    cost: Option<Duration>,
    state: Mutex<State>,
}

/// Each critical section is one lookup and one insert: a panic leaves nothing half-done.
struct State {
    /// Address (IPv4, or IPv6 /64) → the moment its refusals are paid off (the GCRA's
    /// theoretical arrival time): an address may be charged while that is less than a
    /// window away.
    paid_off: LruCache<u128, Instant>,
    /// User → until when it is known to work.
    known: LruCache<UserId, Instant>,
}

/// The key an address is counted under: IPv4 as is, IPv6 by its /64, no address as one.
fn address_key(client: Option<IpAddr>) -> u128 {
    match client {
        Some(IpAddr::V4(v4)) => u128::from(u32::from(v4)),
        Some(IpAddr::V6(v6)) => {
            match v6.to_ipv4_mapped() {
                Some(v4) => u128::from(u32::from(v4)),
                // The upper 64 bits; the low bit marks IPv6, so no IPv4 key equals it.
                None => (u128::from(v6) >> 64 << 64) | 1,
            }
        }
        None => u128::MAX,
    }
}

impl TokenBudget {
    /// A budget of `per_minute` refusals per address and minute; 0: no limit.
    pub fn new(per_minute: u32) -> TokenBudget {
        let size = |n| NonZeroUsize::new(n).expect("non-zero");
        TokenBudget {
            cost: (per_minute > 0).then(|| WINDOW / per_minute),
            state: Mutex::new(State {
                paid_off: LruCache::new(size(MAX_ADDRESSES)),
                known: LruCache::new(size(MAX_KNOWN)),
            }),
        }
    }

    /// Whether a Token Server exchange for `user` from `client` may be made at `now`: Ok,
    /// or the time to wait before the address may be charged again.
    pub fn admit(
        &self,
        client: Option<IpAddr>,
        user: UserId,
        now: Instant,
    ) -> Result<(), Duration> {
        let Some(cost) = self.cost else {
            return Ok(());
        };
        let st = lock(&self.state);
        if st.known.peek(&user).is_some_and(|until| *until > now) {
            return Ok(());
        }
        let Some(paid_off) = st.paid_off.peek(&address_key(client)).copied() else {
            return Ok(());
        };
        // One more refusal would put the debt past the window: wait until it would not.
        let debt = paid_off.saturating_duration_since(now);
        if debt + cost <= WINDOW {
            Ok(())
        } else {
            Err(debt + cost - WINDOW)
        }
    }

    /// What the Token Server said to an exchange for `user` from `client`: `refused` when
    /// it refused the credential (a 4xx but 429), else it accepted it (faults are not
    /// reported here).
    pub fn record(&self, client: Option<IpAddr>, user: UserId, refused: bool, now: Instant) {
        let Some(cost) = self.cost else {
            return;
        };
        let mut st = lock(&self.state);
        if !refused {
            st.known.put(user, now + USER_KNOWN_TO_WORK_FOR);
            return;
        }
        st.known.pop(&user);
        let key = address_key(client);
        let paid_off = st.paid_off.get(&key).map_or(now, |t| (*t).max(now));
        st.paid_off.put(key, paid_off + cost);
    }

    /// Addresses and users remembered (for the tests of the bounds).
    #[cfg(test)]
    fn sizes(&self) -> (usize, usize) {
        let st = lock(&self.state);
        (st.paid_off.len(), st.known.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER: UserId = [1; 16];
    const OTHER: UserId = [2; 16];

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn an_address_may_cause_n_refusals_a_minute() {
        let budget = TokenBudget::new(10);
        let t0 = Instant::now();
        let a = ip("192.0.2.1");
        for _ in 0..10 {
            assert_eq!(budget.admit(a, USER, t0), Ok(()));
            budget.record(a, USER, true, t0);
        }
        // The 11th waits for one refusal's share of the minute: 6 s.
        assert_eq!(budget.admit(a, USER, t0), Err(Duration::from_secs(6)));
        assert_eq!(
            budget.admit(a, USER, t0 + Duration::from_secs(5)),
            Err(Duration::from_secs(1))
        );
        assert_eq!(budget.admit(a, USER, t0 + Duration::from_secs(6)), Ok(()));
        budget.record(a, USER, true, t0 + Duration::from_secs(6));
        assert!(budget.admit(a, USER, t0 + Duration::from_secs(11)).is_err());
        // A minute later the whole budget is back.
        let later = t0 + Duration::from_secs(72);
        for _ in 0..10 {
            assert_eq!(budget.admit(a, USER, later), Ok(()));
            budget.record(a, USER, true, later);
        }
        assert!(budget.admit(a, USER, later).is_err());
        // Other addresses have their own.
        assert_eq!(budget.admit(ip("192.0.2.2"), USER, t0), Ok(()));
        assert_eq!(budget.admit(None, USER, t0), Ok(()));
    }

    #[test]
    fn a_user_whose_token_works_is_never_held_back() {
        let budget = TokenBudget::new(2);
        let t0 = Instant::now();
        let a = ip("198.51.100.7");
        budget.record(a, USER, false, t0);
        for _ in 0..5 {
            budget.record(a, OTHER, true, t0);
        }
        assert!(budget.admit(a, OTHER, t0).is_err());
        // Known to work, from this address or any other, for an hour.
        assert_eq!(budget.admit(a, USER, t0), Ok(()));
        let hour = t0 + USER_KNOWN_TO_WORK_FOR;
        for _ in 0..3 {
            budget.record(a, OTHER, true, hour);
        }
        assert_eq!(budget.admit(a, USER, hour - Duration::from_secs(1)), Ok(()));
        assert!(budget.admit(a, USER, hour).is_err());
        // A refusal for a known user ends its pass: made-up tokens with a known key id are
        // charged like any others.
        budget.record(a, USER, false, t0);
        budget.record(a, USER, true, t0);
        assert!(budget.admit(a, USER, t0).is_err());
    }

    #[test]
    fn ipv6_counts_by_64_and_mapped_ipv4_as_ipv4() {
        let budget = TokenBudget::new(1);
        let t0 = Instant::now();
        budget.record(ip("2001:db8:1:2::1"), USER, true, t0);
        budget.record(ip("2001:db8:1:2::1"), USER, true, t0);
        assert!(budget.admit(ip("2001:db8:1:2:ffff::9"), USER, t0).is_err());
        assert_eq!(budget.admit(ip("2001:db8:1:3::1"), USER, t0), Ok(()));
        budget.record(ip("::ffff:192.0.2.9"), USER, true, t0);
        budget.record(ip("::ffff:192.0.2.9"), USER, true, t0);
        assert!(budget.admit(ip("192.0.2.9"), USER, t0).is_err());
    }

    #[test]
    fn no_limit_remembers_nothing() {
        let budget = TokenBudget::new(0);
        let t0 = Instant::now();
        for _ in 0..100 {
            budget.record(ip("192.0.2.1"), USER, true, t0);
        }
        assert_eq!(budget.admit(ip("192.0.2.1"), USER, t0), Ok(()));
        assert_eq!(budget.sizes(), (0, 0));
    }

    #[test]
    fn memory_is_bounded() {
        let budget = TokenBudget::new(10);
        let t0 = Instant::now();
        for i in 0..(MAX_ADDRESSES as u32 + 100) {
            let client = Some(IpAddr::from(i.to_be_bytes()));
            let user = [(i % 251) as u8; 16];
            budget.record(client, user, true, t0);
            let mut other = [0u8; 16];
            other[..4].copy_from_slice(&i.to_be_bytes());
            budget.record(client, other, false, t0);
        }
        assert_eq!(budget.sizes(), (MAX_ADDRESSES, MAX_KNOWN));
    }
}
