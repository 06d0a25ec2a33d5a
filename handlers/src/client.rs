//! The outbound HTTP client, the only way out for every handler: pooled connections, no redirects, no proxies, and the SSRF guard
//! in the resolver, so the address that was vetted is the address that is dialled.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use herald_common::config::ExecutorConfig;
use herald_common::net::{Destinations, Refused};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::email::Security;
use crate::mail::{Relay, Relays};
use crate::oauth::TokenCache;

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
    /// OAuth tokens by action, shared by every attempt of the process.
    pub tokens: Arc<TokenCache>,
    /// SMTP connection pools by relay.
    pub relays: Arc<Relays>,
    /// The operator's relay, for email actions that name none (`executor.smtp`).
    pub default_relay: Option<Relay>,
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
            tokens: Arc::default(),
            relays: Arc::default(),
            default_relay: None,
        })
    }

    /// The outbound the executor's settings describe: its destination policy, timeouts,
    /// response limit and default SMTP relay.
    pub fn from_config(settings: &ExecutorConfig) -> anyhow::Result<Self> {
        let relay = &settings.smtp;
        let default_relay = (!relay.host.is_empty()).then(|| {
            let security = Security::parse(&relay.security).unwrap_or(Security::StartTls);
            Relay {
                host: relay.host.clone(),
                port: relay.port,
                security,
                credentials: (!relay.username.is_empty())
                    .then(|| (relay.username.clone(), relay.password.clone())),
                trusted: true,
            }
        });
        Ok(Self::new(
            &settings.allow_private_destinations,
            Duration::from_millis(settings.connect_timeout_ms),
            settings.response_body_limit_bytes,
        )?
        .with_default_relay(default_relay))
    }

    /// This outbound with the operator's default SMTP relay.
    pub fn with_default_relay(mut self, relay: Option<Relay>) -> Self {
        self.default_relay = relay;
        self
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
