//! Which network destinations outgoing requests may reach (the SSRF guard's decision).
//!
//! Pure functions over addresses: the executor resolves a host, asks [`Destinations::check`]
//! about every address, and connects only to an address that passed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One entry of the private-destination allow-list: a CIDR block or an exact host name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowEntry {
    Network { addr: IpAddr, prefix: u8 },
    Host(String),
}

impl AllowEntry {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if let Some((addr, prefix)) = text.split_once('/') {
            let addr: IpAddr = addr
                .parse()
                .map_err(|_| format!("{addr:?} is not an IP address"))?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let prefix: u8 = prefix
                .parse()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("prefix must be 0 to {max}"))?;
            return Ok(Self::Network { addr, prefix });
        }
        if let Ok(addr) = text.parse::<IpAddr>() {
            let prefix = if addr.is_ipv4() { 32 } else { 128 };
            return Ok(Self::Network { addr, prefix });
        }
        let valid_host = !text.is_empty()
            && text.len() <= 253
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        if valid_host {
            Ok(Self::Host(text.to_ascii_lowercase()))
        } else {
            Err(format!(
                "{text:?} is neither a CIDR block, an IP address nor a host name"
            ))
        }
    }

    fn contains(&self, host: &str, ip: IpAddr) -> bool {
        match self {
            Self::Host(name) => name.eq_ignore_ascii_case(host.trim_end_matches('.')),
            Self::Network { addr, prefix } => in_network(ip, *addr, *prefix),
        }
    }
}

fn in_network(ip: IpAddr, network: IpAddr, prefix: u8) -> bool {
    match (ip, network) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix))
            };
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(prefix))
            };
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

/// Why an address is not public.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restriction {
    Loopback,
    Private,
    LinkLocal,
    SharedAddressSpace,
    Multicast,
    Unspecified,
    Broadcast,
    Documentation,
    CloudMetadata,
    Reserved,
}

impl Restriction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Loopback => "loopback",
            Self::Private => "private",
            Self::LinkLocal => "link-local",
            Self::SharedAddressSpace => "shared address space (CGNAT)",
            Self::Multicast => "multicast",
            Self::Unspecified => "unspecified",
            Self::Broadcast => "broadcast",
            Self::Documentation => "documentation",
            Self::CloudMetadata => "cloud metadata",
            Self::Reserved => "reserved",
        }
    }
}

/// Classifies an address; `None` means it is an ordinary public address.
pub fn restriction(ip: IpAddr) -> Option<Restriction> {
    match ip {
        IpAddr::V4(v4) => restriction_v4(v4),
        IpAddr::V6(v6) => {
            // An IPv4-mapped or -compatible address reaches the IPv4 host: judge that host.
            if let Some(v4) = v6.to_ipv4_mapped() {
                return restriction_v4(v4);
            }
            restriction_v6(v6)
        }
    }
}

fn restriction_v4(ip: Ipv4Addr) -> Option<Restriction> {
    let [a, b, c, _] = ip.octets();
    if ip == Ipv4Addr::new(169, 254, 169, 254) || ip == Ipv4Addr::new(100, 100, 100, 200) {
        return Some(Restriction::CloudMetadata);
    }
    if ip.is_unspecified() || a == 0 {
        return Some(Restriction::Unspecified);
    }
    if ip.is_loopback() {
        return Some(Restriction::Loopback);
    }
    if ip.is_private() {
        return Some(Restriction::Private);
    }
    if ip.is_link_local() {
        return Some(Restriction::LinkLocal);
    }
    if a == 100 && (64..128).contains(&b) {
        return Some(Restriction::SharedAddressSpace);
    }
    if ip.is_multicast() {
        return Some(Restriction::Multicast);
    }
    if ip.is_broadcast() {
        return Some(Restriction::Broadcast);
    }
    if ip.is_documentation() {
        return Some(Restriction::Documentation);
    }
    // 192.0.0.0/24 (IETF protocol assignments), 198.18.0.0/15 (benchmarking), 240.0.0.0/4.
    if (a == 192 && b == 0 && c == 0) || (a == 198 && (b == 18 || b == 19)) || a >= 240 {
        return Some(Restriction::Reserved);
    }
    None
}

fn restriction_v6(ip: Ipv6Addr) -> Option<Restriction> {
    let segments = ip.segments();
    if ip.is_unspecified() {
        return Some(Restriction::Unspecified);
    }
    if ip.is_loopback() {
        return Some(Restriction::Loopback);
    }
    if ip.is_multicast() {
        return Some(Restriction::Multicast);
    }
    if segments[0] & 0xffc0 == 0xfe80 {
        return Some(Restriction::LinkLocal);
    }
    if segments == [0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254] {
        return Some(Restriction::CloudMetadata);
    }
    if segments[0] & 0xfe00 == 0xfc00 {
        return Some(Restriction::Private);
    }
    if segments[0] == 0x2001 && segments[1] == 0x0db8 {
        return Some(Restriction::Documentation);
    }
    // IPv4-compatible (::a.b.c.d), NAT64 (64:ff9b::/96) and 6to4 (2002::/16) embed an IPv4 host.
    let embedded = if segments[0..6] == [0; 6] || (segments[0] == 0x64 && segments[1] == 0xff9b) {
        Some(Ipv4Addr::new(
            (segments[6] >> 8) as u8,
            segments[6] as u8,
            (segments[7] >> 8) as u8,
            segments[7] as u8,
        ))
    } else if segments[0] == 0x2002 {
        Some(Ipv4Addr::new(
            (segments[1] >> 8) as u8,
            segments[1] as u8,
            (segments[2] >> 8) as u8,
            segments[2] as u8,
        ))
    } else {
        None
    };
    embedded.and_then(restriction_v4)
}

/// The policy: public addresses pass; restricted ones pass only when allow-listed.
#[derive(Debug, Clone, Default)]
pub struct Destinations {
    allow: Vec<AllowEntry>,
}

/// A refused destination, with the reason recorded on the attempt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("destination {ip} of {host} is {} and not allow-listed", .restriction.as_str())]
pub struct Refused {
    pub host: String,
    pub ip: IpAddr,
    pub restriction: Restriction,
}

impl Destinations {
    /// Builds the policy from config entries (already validated at start).
    pub fn new(entries: &[String]) -> Result<Self, String> {
        Ok(Self {
            allow: entries
                .iter()
                .map(|e| AllowEntry::parse(e))
                .collect::<Result<_, _>>()?,
        })
    }

    /// Whether `host` at `ip` is on the allow-list itself (whatever its address class): what a
    /// connection without encryption needs (SMTP with `security: none`).
    pub fn allow_listed(&self, host: &str, ip: IpAddr) -> bool {
        self.allow.iter().any(|entry| entry.contains(host, ip))
    }

    pub fn check(&self, host: &str, ip: IpAddr) -> Result<(), Refused> {
        match restriction(ip) {
            None => Ok(()),
            Some(_) if self.allow.iter().any(|entry| entry.contains(host, ip)) => Ok(()),
            Some(restriction) => Err(Refused {
                host: host.to_owned(),
                ip,
                restriction,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_classes() {
        let cases = [
            ("8.8.8.8", None),
            ("1.1.1.1", None),
            ("127.0.0.1", Some(Restriction::Loopback)),
            ("127.9.9.9", Some(Restriction::Loopback)),
            ("10.1.2.3", Some(Restriction::Private)),
            ("172.16.0.1", Some(Restriction::Private)),
            ("172.32.0.1", None),
            ("192.168.1.1", Some(Restriction::Private)),
            ("169.254.1.1", Some(Restriction::LinkLocal)),
            ("169.254.169.254", Some(Restriction::CloudMetadata)),
            ("100.64.0.1", Some(Restriction::SharedAddressSpace)),
            ("100.128.0.1", None),
            ("0.0.0.0", Some(Restriction::Unspecified)),
            ("224.0.0.1", Some(Restriction::Multicast)),
            ("255.255.255.255", Some(Restriction::Broadcast)),
            ("::1", Some(Restriction::Loopback)),
            ("::", Some(Restriction::Unspecified)),
            ("fe80::1", Some(Restriction::LinkLocal)),
            ("fc00::1", Some(Restriction::Private)),
            ("fd00:ec2::254", Some(Restriction::CloudMetadata)),
            ("fd12::1", Some(Restriction::Private)),
            ("ff02::1", Some(Restriction::Multicast)),
            ("::ffff:127.0.0.1", Some(Restriction::Loopback)),
            ("::ffff:169.254.169.254", Some(Restriction::CloudMetadata)),
            ("::ffff:8.8.8.8", None),
            ("64:ff9b::a00:1", Some(Restriction::Private)),
            ("2002:7f00:1::", Some(Restriction::Loopback)),
            ("2606:4700:4700::1111", None),
        ];
        for (text, expected) in cases {
            let ip: IpAddr = text.parse().unwrap();
            assert_eq!(restriction(ip), expected, "{text}");
        }
    }

    #[test]
    fn allow_list_permits_exactly_what_it_names() {
        let policy = Destinations::new(&[
            "127.0.0.1/32".into(),
            "10.0.0.0/8".into(),
            "hooks.internal".into(),
        ])
        .unwrap();
        let ip = |t: &str| t.parse::<IpAddr>().unwrap();
        assert!(policy.check("x", ip("127.0.0.1")).is_ok());
        assert!(policy.check("x", ip("127.0.0.2")).is_err());
        assert!(policy.check("x", ip("10.200.0.1")).is_ok());
        assert!(policy.check("hooks.internal", ip("192.168.0.9")).is_ok());
        assert!(policy.check("other.internal", ip("192.168.0.9")).is_err());
        assert!(policy.check("x", ip("93.184.216.34")).is_ok());
        let refused = Destinations::default()
            .check("localhost", ip("::1"))
            .unwrap_err();
        assert_eq!(refused.restriction, Restriction::Loopback);
    }

    #[test]
    fn allow_entries_parse() {
        assert!(AllowEntry::parse("10.0.0.0/8").is_ok());
        assert!(AllowEntry::parse("::1/128").is_ok());
        assert!(AllowEntry::parse("127.0.0.1").is_ok());
        assert!(AllowEntry::parse("10.0.0.0/33").is_err());
        assert!(AllowEntry::parse("a b").is_err());
    }
}
