//! The client's address behind reverse proxies, for the request log.
//!
//! `X-Forwarded-For` and `Forwarded` are just headers: anyone can send them. They are read
//! only when the peer that connected is a trusted proxy (`trusted_proxies`), and then from
//! the right, the end the proxies append to: each trusted hop is skipped, and the first
//! address that is not a trusted proxy is the client. A hop that is not an IP address
//! (`unknown`, an obfuscated `_node`, garbage) stops the walk at the last known hop, so a
//! client can never choose the address that is logged, only add entries a trusted proxy
//! then vouches for as "what the client said".
//!
//! Only the header the operator names (`trusted_proxies_header`: `X-Forwarded-For` by
//! default, or `Forwarded`, RFC 7239) is read, never the other: a proxy that sets one
//! passes a client's copy of the other through untouched, and that copy must not be taken
//! for the proxy's word. Several headers of that name are read in order, as one
//! comma-separated list.

use crate::config::canonical_ip;
use crate::config::{ForwardedHeader, TrustedProxies};
use std::net::IpAddr;

/// The client address: `peer` (None for a unix socket peer), or what trusted proxies say.
pub fn client(
    trusted: &TrustedProxies,
    peer: Option<IpAddr>,
    headers: &[(&str, &str)],
) -> Option<IpAddr> {
    let peer = peer.map(canonical_ip);
    if !trusted_peer(trusted, peer) {
        return peer;
    }
    let forwarded = trusted.header == ForwardedHeader::Forwarded;
    let name = trusted.header.name();
    let hops: Vec<&str> = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .flat_map(|(_, v)| v.split(','))
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        let node = if forwarded {
            for_param(hop)
        } else {
            Some(hop.trim())
        };
        let Some(ip) = node.and_then(parse_node) else {
            break;
        };
        client = Some(ip);
        if !trusted.trusts(ip) {
            break;
        }
    }
    client
}

/// Whether the peer (None for a unix socket peer) is a trusted proxy, whose forwarding
/// headers (and `X-Request-Id`) are believed.
pub(crate) fn trusted_peer(trusted: &TrustedProxies, peer: Option<IpAddr>) -> bool {
    if trusted.is_empty() {
        return false;
    }
    match peer.map(canonical_ip) {
        Some(ip) => trusted.trusts(ip),
        None => trusted.unix,
    }
}

/// The `for=` value of one `Forwarded` element (`for=192.0.2.1;proto=https`), unquoted.
fn for_param(element: &str) -> Option<&str> {
    element.split(';').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("for")
            .then(|| value.trim().trim_matches('"'))
    })
}

/// `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`, `[2001:db8::1]`, `[2001:db8::1]:80`.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(canonical_ip(ip));
    }
    let host = match node.strip_prefix('[') {
        Some(rest) => {
            let (v6, after) = rest.split_once(']')?;
            if !(after.is_empty() || port(after)) {
                return None;
            }
            v6
        }
        None => {
            let (v4, p) = node.split_once(':')?;
            if !port(&format!(":{p}")) {
                return None;
            }
            v4
        }
    };
    host.parse::<IpAddr>().ok().map(canonical_ip)
}

/// `:` followed by 1 to 5 digits.
fn port(s: &str) -> bool {
    s.strip_prefix(':')
        .is_some_and(|p| (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trusted(items: &str) -> TrustedProxies {
        let items: Vec<String> = items.split(' ').map(String::from).collect();
        TrustedProxies::parse(&items).unwrap()
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    fn client_of(t: &TrustedProxies, peer: &str, headers: &[(&str, &str)]) -> Option<IpAddr> {
        let peer = (!peer.is_empty()).then(|| peer.parse().unwrap());
        client(t, peer, headers)
    }

    #[test]
    fn headers_are_ignored_unless_the_peer_is_trusted() {
        let xff = [("X-Forwarded-For", "203.0.113.9")];
        let none = TrustedProxies::default();
        assert_eq!(client_of(&none, "127.0.0.1", &xff), ip("127.0.0.1"));
        let t = trusted("10.0.0.0/8");
        assert_eq!(client_of(&t, "192.0.2.7", &xff), ip("192.0.2.7"));
        assert_eq!(client_of(&t, "10.1.1.1", &xff), ip("203.0.113.9"));
        // A unix socket peer only with `unix`.
        assert_eq!(client_of(&t, "", &xff), None);
        assert_eq!(client_of(&trusted("unix"), "", &xff), ip("203.0.113.9"));
    }

    #[test]
    fn the_walk_starts_from_the_right_and_skips_trusted_hops() {
        let t = trusted("10.0.0.0/8 127.0.0.1");
        // The client made up the first entry; 198.51.100.4 is who reached the first proxy.
        let h = [("X-Forwarded-For", "1.2.3.4, 198.51.100.4, 10.0.0.2")];
        assert_eq!(client_of(&t, "127.0.0.1", &h), ip("198.51.100.4"));
        // Several headers are one list, in order.
        let h = [
            ("X-Forwarded-For", "1.2.3.4"),
            ("x-forwarded-for", "198.51.100.4,10.0.0.2"),
        ];
        assert_eq!(client_of(&t, "127.0.0.1", &h), ip("198.51.100.4"));
        // Only trusted hops: the leftmost one.
        let h = [("X-Forwarded-For", "10.0.0.3, 10.0.0.2")];
        assert_eq!(client_of(&t, "127.0.0.1", &h), ip("10.0.0.3"));
        // Garbage stops the walk at the last hop known.
        let h = [("X-Forwarded-For", "198.51.100.4, bogus, 10.0.0.2")];
        assert_eq!(client_of(&t, "127.0.0.1", &h), ip("10.0.0.2"));
        let h = [("X-Forwarded-For", "198.51.100.4, \r\nevil")];
        assert_eq!(client_of(&t, "127.0.0.1", &h), ip("127.0.0.1"));
        // No header: the peer.
        assert_eq!(client_of(&t, "127.0.0.1", &[]), ip("127.0.0.1"));
    }

    #[test]
    fn only_the_header_the_operator_names_is_read() {
        let h = [
            ("X-Forwarded-For", "192.0.2.1"),
            (
                "Forwarded",
                "for=192.0.2.60;proto=http;by=203.0.113.43, For=\"[2001:db8:cafe::17]:4711\"",
            ),
        ];
        // The default: a proxy that sets X-Forwarded-For; a client's Forwarded is ignored.
        let xff = trusted("127.0.0.1");
        assert_eq!(client_of(&xff, "127.0.0.1", &h), ip("192.0.2.1"));
        assert_eq!(
            client_of(&xff, "127.0.0.1", &[("Forwarded", "for=6.6.6.6")]),
            ip("127.0.0.1")
        );
        let t = TrustedProxies {
            header: ForwardedHeader::Forwarded,
            ..trusted("127.0.0.1")
        };
        assert_eq!(client_of(&t, "127.0.0.1", &h), ip("2001:db8:cafe::17"));
        assert_eq!(
            client_of(&t, "127.0.0.1", &[("X-Forwarded-For", "6.6.6.6")]),
            ip("127.0.0.1")
        );
        let h = [("Forwarded", "for=unknown")];
        assert_eq!(client_of(&t, "127.0.0.1", &h), ip("127.0.0.1"));
        let h = [("Forwarded", "for=_hidden, for=198.51.100.1:80")];
        assert_eq!(client_of(&t, "127.0.0.1", &h), ip("198.51.100.1"));
    }

    #[test]
    fn node_forms() {
        for (node, want) in [
            ("192.0.2.1", "192.0.2.1"),
            ("192.0.2.1:8080", "192.0.2.1"),
            ("2001:db8::1", "2001:db8::1"),
            ("[2001:db8::1]", "2001:db8::1"),
            ("[2001:db8::1]:443", "2001:db8::1"),
            ("::ffff:192.0.2.1", "192.0.2.1"),
        ] {
            assert_eq!(parse_node(node), ip(want), "{node}");
        }
        for bad in [
            "",
            "unknown",
            "192.0.2.1:",
            "192.0.2.1:123456",
            "[::1",
            "[::1]x",
            "a:1",
        ] {
            assert_eq!(parse_node(bad), None, "{bad}");
        }
    }
}
