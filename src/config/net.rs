//! Address-shaped settings: the networks of trusted reverse proxies (`trusted_proxies`) and
//! the permission bits of a unix socket (`unix_socket_mode`).

use std::fmt;
use std::net::IpAddr;

/// An IP network: an address and a prefix length (`10.0.0.0/8`, `::1/128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// `ADDR` (a single host) or `ADDR/PREFIX`. Host bits set under the prefix are refused
    /// (`10.0.0.1/8` is a typo more often than an intent). IPv6 may be bracketed.
    pub fn parse(s: &str) -> Option<IpNet> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                (a, Some(p.parse::<u8>().ok()?))
            }
            Some(_) => return None,
            None => (s, None),
        };
        let addr = crate::endpoint::bare_host(addr);
        let addr = canonical_ip(addr.parse::<IpAddr>().ok()?);
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return None;
        }
        let net = IpNet { addr, prefix };
        (bits(addr) & !net.mask() == 0).then_some(net)
    }

    /// Whether `ip` is inside this network (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical_ip(ip);
        ip.is_ipv4() == self.addr.is_ipv4() && bits(ip) & self.mask() == bits(self.addr)
    }

    /// The prefix as a mask over [`bits`].
    fn mask(&self) -> u128 {
        let width = if self.addr.is_ipv4() { 32 } else { 128 };
        let host_bits = u32::from(width - self.prefix);
        let all = if width == 32 {
            u128::from(u32::MAX)
        } else {
            u128::MAX
        };
        all.checked_shl(host_bits).unwrap_or(0) & all
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// `::ffff:a.b.c.d` is `a.b.c.d`: a dual-stack listener sees IPv4 peers that way.
pub(crate) fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

fn bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The peers whose forwarding header is believed (none by default), and which header that
/// is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    /// Addresses and networks.
    pub nets: Vec<IpNet>,
    /// The word `unix`: whoever connects to the unix socket (its mode decides who can).
    pub unix: bool,
    /// `trusted_proxies_header`: the one header the proxies set. The other is a client's
    /// and never read: a proxy that sets only `X-Forwarded-For` passes a client's
    /// `Forwarded` through untouched.
    pub header: ForwardedHeader,
}

/// The header a trusted proxy names the client in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For` (what nginx's `$proxy_add_x_forwarded_for` and Caddy set).
    #[default]
    XForwardedFor,
    /// `Forwarded` (RFC 7239), its `for=` parameters.
    Forwarded,
}

impl ForwardedHeader {
    /// `x-forwarded-for` or `forwarded`, in any case.
    pub fn from_name(name: &str) -> Option<ForwardedHeader> {
        match name.trim().to_ascii_lowercase().as_str() {
            "x-forwarded-for" => Some(ForwardedHeader::XForwardedFor),
            "forwarded" => Some(ForwardedHeader::Forwarded),
            _ => None,
        }
    }

    /// The header's name as written on the wire.
    pub fn name(self) -> &'static str {
        match self {
            ForwardedHeader::XForwardedFor => "X-Forwarded-For",
            ForwardedHeader::Forwarded => "Forwarded",
        }
    }
}

impl TrustedProxies {
    /// Comma or space separated items: addresses, CIDR networks, or `unix`. `Err` carries
    /// the first item that is none of these.
    pub fn parse(items: &[String]) -> Result<TrustedProxies, String> {
        let mut trusted = TrustedProxies::default();
        for item in items {
            if item.eq_ignore_ascii_case("unix") {
                trusted.unix = true;
            } else {
                trusted
                    .nets
                    .push(IpNet::parse(item).ok_or_else(|| item.clone())?);
            }
        }
        Ok(trusted)
    }

    /// Whether no peer is trusted (the default).
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty() && !self.unix
    }

    /// Whether a peer at `ip` is a trusted proxy.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|n| n.contains(ip))
    }
}

impl fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut items: Vec<String> = self.nets.iter().map(IpNet::to_string).collect();
        if self.unix {
            items.push("unix".into());
        }
        f.write_str(&items.join(", "))
    }
}

/// Octal permission bits of a unix socket, as chmod writes them: `660`, `0660`, `0o660`.
/// Only the rwx bits (no setuid, setgid or sticky).
pub(crate) fn parse_mode(s: &str) -> Option<u32> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b))
    {
        return None;
    }
    u32::from_str_radix(digits, 8).ok().filter(|m| *m <= 0o777)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_contain_what_they_should() {
        let net = IpNet::parse("10.0.0.0/8").unwrap();
        assert!(net.contains(ip("10.255.1.2")));
        assert!(!net.contains(ip("11.0.0.1")));
        assert!(net.contains(ip("::ffff:10.1.2.3")), "IPv4-mapped peers");
        assert!(!net.contains(ip("::1")));
        let host = IpNet::parse("127.0.0.1").unwrap();
        assert!(host.contains(ip("127.0.0.1")) && !host.contains(ip("127.0.0.2")));
        let v6 = IpNet::parse("[2001:db8::]/32").unwrap();
        assert!(v6.contains(ip("2001:db8:1::7")) && !v6.contains(ip("2001:db9::1")));
        let all = IpNet::parse("0.0.0.0/0").unwrap();
        assert!(all.contains(ip("203.0.113.9")) && !all.contains(ip("2001:db8::1")));
        assert!(IpNet::parse("::/0").unwrap().contains(ip("2001:db8::1")));
        assert_eq!(IpNet::parse("::1").unwrap().to_string(), "::1/128");
    }

    #[test]
    fn bad_networks_are_refused() {
        for bad in [
            "10.0.0.1/8",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/",
            "10.0.0.0/-1",
            "10.0.0.0/+8",
            "example.com",
            "10.0.0",
            "",
            "/8",
            "1.2.3.4/8/8",
        ] {
            assert_eq!(IpNet::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn trusted_proxies_lists() {
        let items = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        let t = TrustedProxies::parse(&items("127.0.0.1 10.0.0.0/8 UNIX ::1")).unwrap();
        assert!(t.unix && t.trusts(ip("10.2.3.4")) && t.trusts(ip("::1")));
        assert!(!t.trusts(ip("192.0.2.1")));
        assert_eq!(t.to_string(), "127.0.0.1/32, 10.0.0.0/8, ::1/128, unix");
        assert_eq!(
            TrustedProxies::parse(&items("127.0.0.1 proxy.local")),
            Err("proxy.local".into())
        );
        assert!(TrustedProxies::default().is_empty());
    }

    #[test]
    fn socket_modes() {
        assert_eq!(parse_mode("660"), Some(0o660));
        assert_eq!(parse_mode("0660"), Some(0o660));
        assert_eq!(parse_mode("0o600"), Some(0o600));
        assert_eq!(parse_mode("0"), Some(0));
        for bad in [
            "",
            "0o",
            "888",
            "rw-rw----",
            "1777",
            "4660",
            "07777",
            "-660",
            "0x1b6",
        ] {
            assert_eq!(parse_mode(bad), None, "{bad}");
        }
    }
}
