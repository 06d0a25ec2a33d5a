//! The outbound SMTP side, as [`crate::client`] is the HTTP one: each relay's host resolved and
//! its address vetted by the same SSRF guard before a connection is made (the vetted address is
//! the one dialled; TLS still checks the host's name), and connections pooled per relay with
//! `lettre`, so that messages to the same relay reuse them.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use herald_common::status::ErrorKind;
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use crate::attempt::Delivered;
use crate::client::Outbound;
use crate::email::Security;

/// An SMTP server to send through, its credentials rendered.
#[derive(Clone)]
pub struct Relay {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub credentials: Option<(String, String)>,
    /// The operator's default relay: configuration, not a tenant's input, so the SSRF guard
    /// (which keeps tenants off private addresses) does not apply to it.
    pub trusted: bool,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("authenticated", &self.credentials.is_some())
            .finish()
    }
}

impl Relay {
    /// The pool's key: the address dialled and everything of the connection (hashed, so that
    /// no credential is kept as a key).
    fn key(&self, ip: IpAddr) -> [u8; 32] {
        let mut hash = Sha256::new();
        let security = format!("{:?}", self.security);
        let (user, password) = self
            .credentials
            .as_ref()
            .map(|(u, p)| (u.as_str(), p.as_str()))
            .unwrap_or_default();
        for part in [
            ip.to_string().as_str(),
            &self.port.to_string(),
            &self.host,
            &security,
            user,
            password,
        ] {
            hash.update(part.len().to_le_bytes());
            hash.update(part.as_bytes());
        }
        hash.finalize().into()
    }
}

/// Pools beyond which the map is emptied (in-use transports finish their sends).
const MAX_RELAYS: usize = 1000;
/// Idle connections kept per relay in one process. lettre opens more when more sends run at
/// once and closes those beyond this when they come back, so it matches the executor's default
/// `per_destination_concurrency`: at full speed every send finds a connection to reuse.
const POOL_SIZE: u32 = 64;

/// Every relay's connection pool in this process.
#[derive(Default)]
pub struct Relays {
    pools: Mutex<HashMap<[u8; 32], AsyncSmtpTransport<Tokio1Executor>>>,
}

impl Relays {
    fn transport(
        &self,
        relay: &Relay,
        ip: IpAddr,
        timeout: Duration,
    ) -> Result<AsyncSmtpTransport<Tokio1Executor>, (ErrorKind, String)> {
        let key = relay.key(ip);
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(transport) = pools.get(&key) {
            return Ok(transport.clone());
        }
        let tls = || {
            TlsParameters::new(relay.host.clone())
                .map_err(|e| (ErrorKind::Tls, format!("TLS for {}: {e}", relay.host)))
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(ip.to_string())
            .port(relay.port)
            .timeout(Some(timeout))
            .pool_config(
                PoolConfig::new()
                    .max_size(POOL_SIZE)
                    .idle_timeout(Duration::from_secs(60)),
            )
            .tls(match relay.security {
                Security::Tls => Tls::Wrapper(tls()?),
                Security::StartTls => Tls::Required(tls()?),
                Security::None => Tls::None,
            });
        if let Some((user, password)) = &relay.credentials {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        let transport = builder.build();
        if pools.len() >= MAX_RELAYS {
            pools.clear();
        }
        pools.insert(key, transport.clone());
        Ok(transport)
    }
}

/// The address to dial for `relay`: its host resolved, each address put to the guard.
async fn vetted(outbound: &Outbound, relay: &Relay) -> Result<IpAddr, (ErrorKind, String)> {
    let host = relay.host.as_str();
    let addresses: Vec<IpAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => tokio::net::lookup_host((host, relay.port))
            .await
            .map_err(|e| (ErrorKind::Dns, format!("{host}: {e}")))?
            .map(|a| a.ip())
            .collect(),
    };
    let policy = &outbound.destinations;
    let mut refusal = None;
    for ip in addresses {
        if relay.security == Security::None && !relay.trusted && !policy.allow_listed(host, ip) {
            refusal.get_or_insert(format!(
                "SMTP without encryption (security: none) only to allow-listed destinations \
                 (executor.allow_private_destinations); {host} at {ip} is not"
            ));
            continue;
        }
        if relay.trusted {
            return Ok(ip);
        }
        match policy.check(host, ip) {
            Ok(()) => return Ok(ip),
            Err(refused) => {
                refusal.get_or_insert(refused.to_string());
            }
        }
    }
    Err((
        ErrorKind::DestinationRefused,
        refusal.unwrap_or_else(|| format!("{host} has no addresses")),
    ))
}

/// What lettre's error means for the attempt.
fn error_kind(error: &lettre::transport::smtp::Error) -> ErrorKind {
    // A client error is Herald and the server not agreeing on the protocol (no STARTTLS
    // offered, no common AUTH mechanism): they will not agree later either.
    if error.is_permanent() || error.is_client() {
        ErrorKind::SmtpRejected
    } else if error.is_transient() {
        ErrorKind::SmtpDeferred
    } else if error.is_timeout() {
        ErrorKind::Timeout
    } else if error.is_tls() {
        ErrorKind::Tls
    } else {
        ErrorKind::Connect
    }
}

/// Sends `message` through `relay` within `timeout`. The attempt records the server's answer
/// (its code as the status) and the message id.
pub async fn send(
    outbound: &Outbound,
    relay: &Relay,
    message: Message,
    message_id: &str,
    timeout: Duration,
) -> Delivered {
    let started = Instant::now();
    let failed =
        |(kind, text): (ErrorKind, String)| Delivered::failed(kind, text, started.elapsed());
    let ip = match vetted(outbound, relay).await {
        Ok(ip) => ip,
        Err(refused) => return failed(refused),
    };
    let transport = match outbound.relays.transport(relay, ip, timeout) {
        Ok(transport) => transport,
        Err(error) => return failed(error),
    };
    match tokio::time::timeout(timeout, transport.send(message)).await {
        Err(_) => failed((
            ErrorKind::Timeout,
            format!(
                "no answer from {}:{} within {timeout:?}",
                relay.host, relay.port
            ),
        )),
        Ok(Err(error)) => failed((error_kind(&error), error.to_string())),
        Ok(Ok(response)) => {
            let words: Vec<&str> = response.message().collect();
            Delivered {
                status: Some(u16::from(response.code())),
                headers: Vec::new(),
                body: Some(format!(
                    "{} {}; message-id {message_id}",
                    response.code(),
                    words.join(" ")
                )),
                error: None,
                duration: started.elapsed(),
            }
        }
    }
}
