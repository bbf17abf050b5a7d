//! Where webhooks may be sent: never to the machine Funnel runs on or the networks around it
//! unless the deployment says so.
//!
//! An office manager chooses a subscription's URL, and the delivery log tells them whether the
//! target answered; without a rule, that is a probe of the internal network (loopback, the cloud
//! metadata service at `169.254.169.254`, private ranges). So by default a target must be a public
//! address: loopback, unspecified, private, shared (CGNAT), link-local, unique-local, site-local,
//! multicast, broadcast, documentation, benchmarking and reserved ranges are refused, for IPv4 and
//! IPv6 (IPv4-mapped, -compatible and NAT64 addresses by the IPv4 address inside; 6to4 and Teredo
//! whole), and so are host names that only mean something inside (`localhost`, `*.localhost`,
//! `*.local`, `*.internal`, `*.home.arpa`).
//!
//! The rule is checked when a subscription is made (the URL's host, and the addresses its name
//! resolves to then) and again at every delivery, on the addresses the connection is actually made
//! to: the HTTP client resolves names through [`Targets`], which drops refused addresses, so a name
//! that resolves to a public address at creation and to an internal one later (DNS rebinding) is
//! refused then. IP-literal URLs do not go through a resolver and are checked before sending;
//! redirects are not followed and no proxy is used.
//!
//! Deployments that deliver to internal receivers list them in `notify.webhook_allowed_hosts`:
//! exact host names (every address they resolve to is then allowed) and IP addresses or CIDR
//! networks (allowed whatever name leads to them).

use futures::future::BoxFuture;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// Resolves host names to addresses (the system resolver in production; a fixed table in tests).
pub trait Resolve: Send + Sync + fmt::Debug {
    fn resolve(&self, host: &str) -> BoxFuture<'static, std::io::Result<Vec<IpAddr>>>;
}

/// The operating system's resolver (`getaddrinfo`, through tokio).
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(&self, host: &str) -> BoxFuture<'static, std::io::Result<Vec<IpAddr>>> {
        let host = host.to_string();
        Box::pin(async move {
            Ok(tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .map(|a| a.ip())
                .collect())
        })
    }
}

/// A fixed table of names (for tests, and hosts that must never go to DNS); other names do not
/// resolve.
#[derive(Clone, Debug, Default)]
pub struct StaticResolver(pub HashMap<String, Vec<IpAddr>>);

impl Resolve for StaticResolver {
    fn resolve(&self, host: &str) -> BoxFuture<'static, std::io::Result<Vec<IpAddr>>> {
        let found = self.0.get(&normal_host(host)).cloned();
        Box::pin(async move {
            found.ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::NotFound, "the name does not resolve")
            })
        })
    }
}

/// Why a target was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{host}` is {class}, an internal target; a deployment that needs it lists it in \
     notify.webhook_allowed_hosts"
)]
pub struct Refused {
    pub host: String,
    /// What kind of address or name it is, e.g. `a loopback address`.
    pub class: String,
}

/// A setting entry that is neither a host name nor an address or network.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a host name, an IP address or a CIDR network")]
pub struct BadEntry(pub String);

/// The target rule with its exceptions, and the resolver names go through.
#[derive(Clone, Debug)]
pub struct Targets {
    hosts: Vec<String>,
    nets: Vec<IpNet>,
    resolver: Arc<dyn Resolve>,
}

impl Default for Targets {
    fn default() -> Self {
        Self {
            hosts: Vec::new(),
            nets: Vec::new(),
            resolver: Arc::new(SystemResolver),
        }
    }
}

/// How long the check at creation waits for a name to resolve.
const RESOLVE_AT_CREATION: Duration = Duration::from_secs(3);

fn normal_host(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

impl Targets {
    /// The default rule with `allowed` as exceptions: host names, IP addresses, CIDR networks.
    pub fn new(allowed: &[String]) -> Result<Self, BadEntry> {
        let mut t = Targets::default();
        for entry in allowed {
            let e = entry.trim();
            if let Ok(net) = e.parse::<IpNet>() {
                t.nets.push(net);
            } else if let Ok(ip) = e
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
            {
                t.nets.push(IpNet::from(ip));
            } else if url::Host::parse(e).is_ok_and(|h| matches!(h, url::Host::Domain(_)))
                && !e.is_empty()
                && !e.contains(['/', ':', '*'])
            {
                t.hosts.push(normal_host(e));
            } else {
                return Err(BadEntry(entry.clone()));
            }
        }
        Ok(t)
    }

    /// The same rule, resolving names with `resolver`.
    pub fn with_resolver(mut self, resolver: Arc<dyn Resolve>) -> Self {
        self.resolver = resolver;
        self
    }

    fn host_allowed(&self, host: &str) -> bool {
        self.hosts.iter().any(|h| *h == normal_host(host))
    }

    /// Whether `ip` may be connected to for `host` (the name it was resolved from, if any).
    pub fn check_ip(&self, host: Option<&str>, ip: IpAddr) -> Result<(), Refused> {
        if host.is_some_and(|h| self.host_allowed(h)) || self.nets.iter().any(|n| n.contains(&ip)) {
            return Ok(());
        }
        match internal_class(ip) {
            None => Ok(()),
            Some(class) => Err(Refused {
                // A name is not followed by the address it resolved to: a refusal must not tell
                // the caller what an internal name resolves to.
                host: host.map_or_else(|| ip.to_string(), str::to_string),
                class: class.into(),
            }),
        }
    }

    /// Whether a name may be used at all (before resolving it).
    pub fn check_name(&self, host: &str) -> Result<(), Refused> {
        if self.host_allowed(host) {
            return Ok(());
        }
        let h = normal_host(host);
        let inside = ["localhost", "local", "internal", "home.arpa", "localdomain"]
            .iter()
            .find(|s| h == **s || h.ends_with(&format!(".{s}")));
        match inside {
            None => Ok(()),
            Some(s) => Err(Refused {
                host: host.to_string(),
                class: format!("a name under `{s}`, which only means something inside a network"),
            }),
        }
    }

    /// The URL's host when it is an IP address (such URLs are not resolved), checked.
    pub fn check_literal(&self, url: &url::Url) -> Result<(), Refused> {
        match url.host() {
            Some(url::Host::Ipv4(ip)) => self.check_ip(None, IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => self.check_ip(None, IpAddr::V6(ip)),
            Some(url::Host::Domain(d)) => self.check_name(d),
            None => Ok(()),
        }
    }

    /// The check when a subscription is made: the host, and the addresses its name resolves to
    /// now. A name that does not resolve (yet) is accepted: every delivery checks again.
    pub async fn check_url(&self, url: &url::Url) -> Result<(), Refused> {
        self.check_literal(url)?;
        let Some(url::Host::Domain(host)) = url.host() else {
            return Ok(());
        };
        if self.host_allowed(host) {
            return Ok(());
        }
        let resolved = tokio::time::timeout(RESOLVE_AT_CREATION, self.resolver.resolve(host)).await;
        if let Ok(Ok(ips)) = resolved {
            for ip in ips {
                self.check_ip(Some(host), ip)?;
            }
        }
        Ok(())
    }

    /// Resolves `host` for a delivery and keeps only the addresses that may be connected to;
    /// none left is an error (so the connection is never made).
    pub async fn resolve_permitted(
        &self,
        host: &str,
    ) -> Result<Vec<IpAddr>, Box<dyn std::error::Error + Send + Sync>> {
        self.check_name(host)?;
        let ips = self.resolver.resolve(host).await?;
        let mut refused = None;
        let ok: Vec<IpAddr> = ips
            .into_iter()
            .filter(|ip| match self.check_ip(Some(host), *ip) {
                Ok(()) => true,
                Err(r) => {
                    refused.get_or_insert(r);
                    false
                }
            })
            .collect();
        match (ok.is_empty(), refused) {
            (false, _) => Ok(ok),
            (true, Some(r)) => Err(Box::new(r)),
            (true, None) => Err("the name resolves to no address".into()),
        }
    }
}

/// An HTTP client that only ever connects where `targets` permits: names resolve through
/// [`Targets::resolve_permitted`], redirects are not followed and no proxy is used, so nothing
/// else chooses where a request goes. Every outgoing request of Funnel (webhooks, chat robots,
/// the checkpoint witness) goes through one.
pub fn guarded_client(
    targets: Arc<Targets>,
    user_agent: &str,
) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .user_agent(user_agent)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(Arc::new(GuardedResolver(targets)))
        .build()
}

/// The resolver the delivery client uses: [`Targets::resolve_permitted`].
#[derive(Debug)]
pub(crate) struct GuardedResolver(pub Arc<Targets>);

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let targets = self.0.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let ips = targets.resolve_permitted(&host).await?;
            let addrs: reqwest::dns::Addrs =
                Box::new(ips.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

fn v4(a: u8, b: u8, c: u8, d: u8, len: u8) -> Ipv4Net {
    Ipv4Net::new(Ipv4Addr::new(a, b, c, d), len).expect("a valid prefix length")
}

fn v6(segments: [u16; 8], len: u8) -> Ipv6Net {
    let [a, b, c, d, e, f, g, h] = segments;
    Ipv6Net::new(Ipv6Addr::new(a, b, c, d, e, f, g, h), len).expect("a valid prefix length")
}

/// What kind of internal address `ip` is, or `None` for a public one.
pub fn internal_class(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(ip) => internal_v4(ip),
        IpAddr::V6(ip) => internal_v6(ip),
    }
}

fn internal_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let ranges: [(Ipv4Net, &str); 15] = [
        (
            v4(0, 0, 0, 0, 8),
            "an unspecified (\"this network\") address",
        ),
        (v4(10, 0, 0, 0, 8), "a private address"),
        (
            v4(100, 64, 0, 0, 10),
            "a shared (carrier-grade NAT) address",
        ),
        (v4(127, 0, 0, 0, 8), "a loopback address"),
        (v4(169, 254, 0, 0, 16), "a link-local address"),
        (v4(172, 16, 0, 0, 12), "a private address"),
        (v4(192, 0, 0, 0, 24), "an IETF protocol address"),
        (v4(192, 0, 2, 0, 24), "a documentation address"),
        (v4(192, 88, 99, 0, 24), "a 6to4 relay address"),
        (v4(192, 168, 0, 0, 16), "a private address"),
        (v4(198, 18, 0, 0, 15), "a benchmarking address"),
        (v4(198, 51, 100, 0, 24), "a documentation address"),
        (v4(203, 0, 113, 0, 24), "a documentation address"),
        (v4(224, 0, 0, 0, 4), "a multicast address"),
        (v4(240, 0, 0, 0, 4), "a reserved or broadcast address"),
    ];
    ranges
        .iter()
        .find(|(net, _)| net.contains(&ip))
        .map(|(_, class)| *class)
}

fn internal_v6(ip: Ipv6Addr) -> Option<&'static str> {
    // IPv4 inside IPv6: mapped (::ffff:a.b.c.d) and NAT64 (64:ff9b::a.b.c.d) count as the IPv4
    // address they carry.
    if let Some(inner) = ip.to_ipv4_mapped() {
        return internal_v4(inner);
    }
    if v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96).contains(&ip) {
        let [.., a, b, c, d] = ip.octets();
        return internal_v4(Ipv4Addr::new(a, b, c, d));
    }
    let ranges: [(Ipv6Net, &str); 13] = [
        (v6([0; 8], 128), "the unspecified address"),
        (v6([0, 0, 0, 0, 0, 0, 0, 1], 128), "the loopback address"),
        (v6([0; 8], 96), "an IPv4-compatible address"),
        (
            v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48),
            "a local NAT64 address",
        ),
        (
            v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64),
            "a discard-only address",
        ),
        (
            v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32),
            "a documentation address",
        ),
        (
            v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 23),
            "an IETF protocol (Teredo, benchmarking) address",
        ),
        (v6([0x2002, 0, 0, 0, 0, 0, 0, 0], 16), "a 6to4 address"),
        (
            v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20),
            "a documentation address",
        ),
        (
            v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7),
            "a unique-local address",
        ),
        (
            v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10),
            "a link-local address",
        ),
        (
            v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10),
            "a site-local address",
        ),
        (v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8), "a multicast address"),
    ];
    ranges
        .iter()
        .find(|(net, _)| net.contains(&ip))
        .map(|(_, class)| *class)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_of_every_class_are_refused_and_public_ones_pass() {
        for bad in [
            "0.0.0.0",
            "0.1.2.3",
            "10.1.2.3",
            "100.64.0.1",
            "100.127.255.254",
            "127.0.0.1",
            "127.255.0.1",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.170",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::127.0.0.1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::1",
            "100::1",
            "2001::1",
            "2001:db8::1",
            "2002:7f00:1::1",
            "3fff::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
        ] {
            let ip: IpAddr = bad.parse().unwrap();
            assert!(internal_class(ip).is_some(), "{bad} must be refused");
        }
        for good in [
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.0",
            "172.32.0.1",
            "192.169.0.1",
            "2606:4700:4700::1111",
            "2a00:1450:4001::1",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            let ip: IpAddr = good.parse().unwrap();
            assert_eq!(internal_class(ip), None, "{good} is public");
        }
    }

    #[test]
    fn allowed_hosts_and_networks_are_exceptions() {
        let t = Targets::new(&[
            "hooks.corp".into(),
            "10.20.0.0/16".into(),
            "127.0.0.1".into(),
            "[::1]".into(),
        ])
        .unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        t.check_ip(Some("hooks.corp"), ip("192.168.1.1")).unwrap();
        t.check_ip(None, ip("10.20.3.4")).unwrap();
        t.check_ip(None, ip("127.0.0.1")).unwrap();
        t.check_ip(None, ip("::1")).unwrap();
        assert!(t.check_ip(None, ip("127.0.0.2")).is_err());
        assert!(t.check_ip(Some("other.corp"), ip("10.21.0.1")).is_err());
        assert!(t.check_name("db.internal").is_err());
        assert!(t.check_name("LOCALHOST.").is_err());
        t.check_name("hooks.corp").unwrap();
        for bad in ["", "http://x/", "10.0.0.0/99", "*.corp"] {
            assert!(Targets::new(&[bad.into()]).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn delivery_resolution_keeps_only_permitted_addresses() {
        let mut table = HashMap::new();
        table.insert(
            "mixed.example".to_string(),
            vec!["127.0.0.1".parse().unwrap(), "8.8.8.8".parse().unwrap()],
        );
        table.insert(
            "rebound.example".to_string(),
            vec!["169.254.169.254".parse().unwrap()],
        );
        let t = Targets::default().with_resolver(Arc::new(StaticResolver(table)));
        assert_eq!(
            t.resolve_permitted("mixed.example").await.unwrap(),
            vec!["8.8.8.8".parse::<IpAddr>().unwrap()]
        );
        let err = t.resolve_permitted("rebound.example").await.unwrap_err();
        assert!(err.to_string().contains("link-local"), "{err}");
        let url = url::Url::parse("http://rebound.example/").unwrap();
        assert!(t.check_url(&url).await.is_err());
        let url = url::Url::parse("http://unknown.example/").unwrap();
        t.check_url(&url).await.unwrap();
    }
}
