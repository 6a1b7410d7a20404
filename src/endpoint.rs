//! URLs and hosts: the upstream URLs (the Token Server's, the Sync nodes' `api_endpoint`),
//! which host is the loopback interface, and the `host[:port]` of the URLs Syncto writes.
//!
//! One parser for the upstream URLs, used by the configuration, the Token Server client and
//! the storage client alike, and one rule for plain `http://`: it would carry bearer tokens
//! and Hawk keys in clear, so it is for the loopback interface only (unless the operator
//! allows it).

use std::net::IpAddr;
use ureq::http::Uri;

/// An upstream URL: `http(s)://host[:port][/path]`, without a user name or password, a query
/// or a fragment (the Token Server's URL has `/1.0/sync/1.5` appended, a node's has the
/// request path appended, and credentials never travel in a URL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint<'a> {
    /// `https://` (else `http://`).
    pub https: bool,
    /// The host as written: a name, an IPv4 address or a bracketed IPv6 address.
    pub host: &'a str,
    /// The port given, else 443 or 80.
    pub port: u16,
    /// The path as written, without its trailing `/` (possibly empty).
    pub path: &'a str,
}

impl<'a> Endpoint<'a> {
    /// Parses `url` (through `http::Uri`, then the rules above). `Err` says what is wrong,
    /// never repeating the URL (it may hold a password).
    pub fn parse(url: &'a str) -> Result<Endpoint<'a>, &'static str> {
        let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err("it does not start with http:// or https://");
        };
        // `Uri` drops a fragment silently.
        if url.contains('#') {
            return Err("it has a fragment (#)");
        }
        let uri: Uri = url.parse().map_err(|_| "it is not a valid URL")?;
        if uri.query().is_some() {
            return Err("it has a query (?)");
        }
        let authority = uri.authority().map_or("", |a| a.as_str());
        if authority.contains('@') {
            return Err("it has a user name or password (@)");
        }
        let host = uri.host().unwrap_or("");
        if host.is_empty() || host == "[]" {
            return Err("it has no host");
        }
        // `Uri` takes any digits for a port: it must be one.
        let port = match &authority[host.len()..] {
            "" if https => 443,
            "" => 80,
            p => p
                .strip_prefix(':')
                .filter(|p| (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|p| p.parse().ok())
                .ok_or("its port is not a number from 0 to 65535")?,
        };
        // The authority starts `rest` (no user name), the path follows it.
        Ok(Endpoint {
            https,
            host: &rest[..host.len()],
            port,
            path: rest[authority.len()..].trim_end_matches('/'),
        })
    }

    /// `host:port/path` of a request to `path` under this endpoint (its query left out), as
    /// upstream errors name where they happened: never a credential, which travels in
    /// headers only.
    pub fn at(&self, path: &str) -> String {
        self.at_hiding_own_path(path, false)
    }

    /// As [`Endpoint::at`], with this endpoint's own path shown as [`HIDDEN_PATH`] when
    /// `hide` is set. A Sync node's endpoint is one user's (`/1.5/<uid>`, the account's
    /// number on that node): `log_user_ids = hashed` keeps it out of the log, whatever the
    /// Token Server put in that path.
    pub fn at_hiding_own_path(&self, path: &str, hide: bool) -> String {
        let own = if hide && !self.path.is_empty() {
            HIDDEN_PATH
        } else {
            self.path
        };
        let path = path.split('?').next().unwrap_or("");
        format!("{}:{}{own}{path}", self.host, self.port)
    }

    /// `http(s)://host:port`, without the path.
    pub fn origin(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}:{}", self.host, self.port)
    }

    /// Whether a request to this endpoint travels in clear over a network: plain `http://`
    /// to anything but the loopback interface.
    pub fn in_clear(&self) -> bool {
        !self.https && !is_loopback_host(self.host)
    }
}

/// What [`Endpoint::at_hiding_own_path`] shows instead of the endpoint's own path.
const HIDDEN_PATH: &str = "/...";

/// An IPv6 host of a URL without its brackets (`[::1]` → `::1`); any other host as it is.
pub fn bare_host(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// Whether a URL-authority host (`localhost`, `127.0.0.5`, `[::1]`) is the loopback interface,
/// where plain http:// exposes nothing on the network.
pub fn is_loopback_host(host: &str) -> bool {
    let bare = bare_host(host);
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
    fn upstream_urls() {
        let t = Endpoint::parse("https://sync-1.example.com/1.5/123/").unwrap();
        assert_eq!(
            (t.https, t.host, t.port, t.path),
            (true, "sync-1.example.com", 443, "/1.5/123")
        );
        let t = Endpoint::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            (t.https, t.host, t.port, t.path),
            (false, "127.0.0.1", 8080, "")
        );
        let t = Endpoint::parse("http://[::1]:5000/x").unwrap();
        assert_eq!((t.host, t.port, t.path), ("[::1]", 5000, "/x"));
        assert_eq!(Endpoint::parse("http://h.example/").unwrap().port, 80);
        for bad in [
            "ftp://x/",
            "http://user@x/",
            "https://user:pw@x/",
            "http://x:99999/",
            "http://x:/",
            "https://a:x/",
            "http:///x",
            "https://",
            "https://[::1",
            "http://[]/",
            "example.com",
            "HTTPS://x/",
            "http://x/a b",
            "http://évil.example/",
            "https://x/?a=1",
            "https://x?a=1",
            "https://x/#f",
            "https://x#f",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Endpoint::parse("https://user:pw@x/"),
            Err("it has a user name or password (@)")
        );
    }

    #[test]
    fn where_an_upstream_error_happened() {
        let node = Endpoint::parse("https://sync-1.example.com/1.5/123").unwrap();
        let path = "/storage/tabs?full=1&limit=10";
        assert_eq!(node.at(path), "sync-1.example.com:443/1.5/123/storage/tabs");
        assert_eq!(node.at_hiding_own_path(path, false), node.at(path));
        assert_eq!(
            node.at_hiding_own_path(path, true),
            "sync-1.example.com:443/.../storage/tabs"
        );
        // An endpoint without a path has nothing to hide.
        let root = Endpoint::parse("http://127.0.0.1:8000").unwrap();
        assert_eq!(
            root.at_hiding_own_path("/info", true),
            "127.0.0.1:8000/info"
        );
        assert_eq!(node.origin(), "https://sync-1.example.com:443");
        assert_eq!(root.origin(), "http://127.0.0.1:8000");
    }

    #[test]
    fn only_loopback_may_be_plain_http() {
        let in_clear = |url| Endpoint::parse(url).unwrap().in_clear();
        assert!(in_clear("http://token.example/"));
        assert!(in_clear("http://10.0.0.1:8000/"));
        assert!(!in_clear("https://token.example/"));
        for url in [
            "http://localhost:5000/",
            "http://127.0.0.2/",
            "http://[::1]:8080/t",
        ] {
            assert!(!in_clear(url), "{url}");
        }
    }

    #[test]
    fn bare_hosts() {
        assert_eq!(bare_host("[::1]"), "::1");
        assert_eq!(bare_host("example.com"), "example.com");
        assert_eq!(bare_host("[::1"), "[::1");
    }

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
