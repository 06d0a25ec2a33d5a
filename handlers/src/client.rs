//! The outbound HTTP client, the only way out for every handler: pooled connections, no redirects, no proxies, and the SSRF guard
//! in the resolver, so the address that was vetted is the address that is dialled.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use herald_common::net::{Destinations, Refused};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Resolves names and keeps only addresses the destination policy allows.
struct GuardedResolver {
    policy: Arc<Destinations>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut first_refusal = None;
            let allowed: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|addr| match policy.check(&host, addr.ip()) {
                    Ok(()) => true,
                    Err(refused) => {
                        first_refusal.get_or_insert(refused);
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                return Err(match first_refusal {
                    Some(refused) => Box::new(refused) as Box<dyn std::error::Error + Send + Sync>,
                    None => format!("{host} has no addresses").into(),
                });
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// How a process reaches the outside: the one guarded client (its connection pool shared by
/// every handler), the destination policy it enforces, and how much of a response is kept.
#[derive(Clone)]
pub struct Outbound {
    pub client: reqwest::Client,
    pub destinations: Arc<Destinations>,
    pub body_limit: usize,
}

impl Outbound {
    /// The client for `destinations` (private ranges `allowed` past the SSRF guard).
    pub fn new(
        allowed: &[String],
        connect_timeout: Duration,
        body_limit: usize,
    ) -> anyhow::Result<Self> {
        let destinations = Arc::new(Destinations::new(allowed).map_err(anyhow::Error::msg)?);
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(GuardedResolver {
                policy: destinations.clone(),
            }))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(connect_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(64)
            .tcp_nodelay(true)
            .build()?;
        Ok(Self {
            client,
            destinations,
            body_limit,
        })
    }
}

/// URLs naming an IP address directly never reach the resolver, so they are checked here.
pub fn check_literal_host(policy: &Destinations, url: &url::Url) -> Result<(), Refused> {
    let ip: Option<IpAddr> = match url.host() {
        Some(url::Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
        Some(url::Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
        _ => None,
    };
    match ip {
        Some(ip) => policy.check(&ip.to_string(), ip),
        None => Ok(()),
    }
}
