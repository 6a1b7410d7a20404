//! URLs and hosts: the upstream URLs (the Token Server's, the Sync nodes' `api_endpoint`),
//! which host is the loopback interface, and the `host[:port]` of the URLs Syncto writes.

use std::net::IpAddr;

/// Whether a URL-authority host (`localhost`, `127.0.0.5`, `[::1]`) is the loopback interface,
/// where plain http:// exposes nothing on the network.
pub fn is_loopback_host(host: &str) -> bool {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if bare.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match bare.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => ip.is_loopback(),
        Ok(IpAddr::V6(ip)) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Err(_) => false,
    }
}

/// Whether `s` is a plain URL authority `host[:port]`: a host name or IPv4 address (letters,
/// digits, `-`, `.`, `_`; 1 to 253 bytes) or a bracketed IPv6 address, then optionally `:`
/// and a port 0-65535. No userinfo (`user@`), path, query or spaces: the value is written into
/// URLs that clients follow with their credentials.
pub fn is_authority(s: &str) -> bool {
    let (host_ok, rest) = if let Some(bracketed) = s.strip_prefix('[') {
        match bracketed.split_once(']') {
            Some((v6, rest)) => (v6.parse::<std::net::Ipv6Addr>().is_ok(), rest),
            None => return false,
        }
    } else {
        let (host, rest) = s.split_at(s.find(':').unwrap_or(s.len()));
        let ok = (1..=253).contains(&host.len())
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
        (ok, rest)
    };
    let port_ok = match rest.strip_prefix(':') {
        None => rest.is_empty(),
        Some(p) => {
            (1..=5).contains(&p.len())
                && p.bytes().all(|b| b.is_ascii_digit())
                && p.parse::<u16>().is_ok()
        }
    };
    host_ok && port_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for host in
            "localhost LOCALHOST 127.0.0.1 127.9.9.9 [::1] ::1 [::ffff:127.0.0.1]".split(' ')
        {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in "example.com 10.0.0.1 [::2] localhost.example.com 0.0.0.0 [::]".split(' ') {
            assert!(!is_loopback_host(host), "{host}");
        }
        assert!(!is_loopback_host(""));
    }

    #[test]
    fn authorities() {
        for ok in [
            "localhost",
            "syncto.example.org",
            "h.example:8443",
            "127.0.0.1:80",
            "[::1]",
            "[::1]:8000",
            "[2001:db8::1]:443",
            "my_host-1",
        ] {
            assert!(is_authority(ok), "{ok}");
        }
        for bad in [
            "",
            "user@evil.example",
            "evil.example/x",
            "evil.example?x",
            "evil.example#x",
            "a b",
            "evil.example:99999",
            "evil.example:",
            "evil.example:x",
            "evil.example:80:80",
            ":80",
            "[::1",
            "[evil]",
            "[::1]x",
            "ev\"il",
            "évil.example",
            "evil.example\r\nX: y",
        ] {
            assert!(!is_authority(bad), "{bad:?}");
        }
        assert!(!is_authority(&"a".repeat(254)));
    }
}
