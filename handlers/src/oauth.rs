//! OAuth 2.0 client credentials (RFC 6749 §4.4), with the `oauth2` crate: a token fetched from
//! the provider's token endpoint through the guarded client (the SSRF guard sees the token URL
//! as it sees any destination), kept per action until shortly before it expires, fetched again
//! when a request is answered 401.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald_common::ids::ActionId;
use herald_common::status::ErrorKind;
use oauth2::basic::BasicClient;
use oauth2::{
    AuthType, ClientId, ClientSecret, HttpRequest, HttpResponse, Scope, TokenResponse, TokenUrl,
};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use crate::client::Outbound;
use crate::outcome::Verdict;
use crate::transport::{self, Method, Request};
use crate::webhook::USER_AGENT;

/// How the client authenticates to the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// HTTP Basic (`client_secret_basic`), the RFC's default.
    Basic,
    /// In the form body (`client_secret_post`).
    Body,
}

/// A token to ask for, its credentials rendered.
#[derive(Clone)]
pub struct TokenRequest {
    pub token_url: url::Url,
    pub client_id: String,
    pub client_secret: String,
    pub scope: Option<String>,
    pub audience: Option<String>,
    pub client_auth: ClientAuth,
}

impl std::fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRequest")
            .field("token_url", &self.token_url.as_str())
            .field("client_id", &self.client_id)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl TokenRequest {
    /// The cache key: the action and every part of the request (a changed secret is another
    /// token), hashed so that no credential is kept as a key.
    fn key(&self, action: ActionId) -> [u8; 32] {
        let mut hash = Sha256::new();
        for part in [
            action.to_string().as_str(),
            self.token_url.as_str(),
            &self.client_id,
            &self.client_secret,
            self.scope.as_deref().unwrap_or(""),
            self.audience.as_deref().unwrap_or(""),
            if self.client_auth == ClientAuth::Basic {
                "b"
            } else {
                "p"
            },
        ] {
            hash.update(part.len().to_le_bytes());
            hash.update(part.as_bytes());
        }
        hash.finalize().into()
    }
}

/// A token request that failed, as the attempt records it.
#[derive(Debug, Clone)]
pub struct TokenFailure {
    pub kind: ErrorKind,
    pub message: String,
    pub verdict: Verdict,
}

struct Cached {
    token: String,
    expires_at: Instant,
}

/// How long a token is used when its endpoint does not say.
const UNSTATED_LIFETIME: Duration = Duration::from_secs(300);
/// Entries beyond which the cache is emptied (it refills from what is in use).
const MAX_ENTRIES: usize = 10_000;

type Slot = Arc<tokio::sync::Mutex<Option<Cached>>>;

/// Tokens by action and credentials. One fetch per key at a time: attempts that find none
/// wait for the one being fetched.
#[derive(Default)]
pub struct TokenCache {
    slots: Mutex<HashMap<[u8; 32], Slot>>,
}

impl TokenCache {
    /// A token for `request` of `action`: the cached one, unless it expired or is `refused`
    /// (the one a 401 just turned down). `true` with it when it was fetched now.
    pub async fn token(
        &self,
        outbound: &Outbound,
        action: ActionId,
        request: &TokenRequest,
        timeout: Duration,
        refused: Option<&str>,
    ) -> Result<(String, bool), TokenFailure> {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            if slots.len() >= MAX_ENTRIES {
                slots.clear();
            }
            slots.entry(request.key(action)).or_default().clone()
        };
        let mut cached = slot.lock().await;
        if let Some(entry) = cached.as_ref()
            && entry.expires_at > Instant::now()
            && refused != Some(entry.token.as_str())
        {
            return Ok((entry.token.clone(), false));
        }
        let (token, lifetime) = fetch(outbound, request, timeout).await?;
        // Used until shortly before it expires, so that no request carries one that lapses
        // on the way.
        let margin = (lifetime / 10).min(Duration::from_secs(30));
        *cached = Some(Cached {
            token: token.clone(),
            expires_at: Instant::now() + lifetime.saturating_sub(margin),
        });
        Ok((token, true))
    }
}

/// What the guarded client made of the token request, for the `oauth2` crate.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
struct Transport {
    kind: ErrorKind,
    message: String,
}

async fn fetch(
    outbound: &Outbound,
    request: &TokenRequest,
    timeout: Duration,
) -> Result<(String, Duration), TokenFailure> {
    let client = BasicClient::new(ClientId::new(request.client_id.clone()))
        .set_client_secret(ClientSecret::new(request.client_secret.clone()))
        .set_token_uri(TokenUrl::from_url(request.token_url.clone()))
        .set_auth_type(match request.client_auth {
            ClientAuth::Basic => AuthType::BasicAuth,
            ClientAuth::Body => AuthType::RequestBody,
        });
    let mut exchange = client.exchange_client_credentials();
    for scope in request.scope.iter().flat_map(|s| s.split_whitespace()) {
        exchange = exchange.add_scope(Scope::new(scope.to_owned()));
    }
    if let Some(audience) = &request.audience {
        exchange = exchange.add_extra_param("audience", audience.clone());
    }
    let http = Guarded {
        outbound,
        timeout,
        status: Mutex::new(None),
    };
    let endpoint = crate::destination::endpoint_of(&request.token_url);
    let answered = exchange.request_async(&http).await;
    let status = *http.status.lock().unwrap_or_else(|e| e.into_inner());
    match answered {
        Ok(token) => Ok((
            token.access_token().secret().clone(),
            token.expires_in().unwrap_or(UNSTATED_LIFETIME),
        )),
        Err(oauth2::RequestTokenError::Request(transport)) => Err(TokenFailure {
            verdict: crate::outcome::classify_error(transport.kind),
            kind: transport.kind,
            message: format!("token endpoint {endpoint}: {}", transport.message),
        }),
        Err(error) => {
            let said = match &error {
                oauth2::RequestTokenError::ServerResponse(response) => {
                    let description = response.error_description().map(|d| format!(": {d}"));
                    format!("{}{}", response.error(), description.unwrap_or_default())
                }
                oauth2::RequestTokenError::Parse(..) => "an answer that is not a token".into(),
                other => other.to_string(),
            };
            // A token endpoint that is down for now may give one later; one that refuses the
            // credentials will not.
            let verdict = match status {
                Some(408 | 425 | 429 | 500..=599) => Verdict::Retry {
                    kind: ErrorKind::Auth,
                    retry_after: None,
                },
                _ => Verdict::Fail {
                    kind: ErrorKind::Auth,
                },
            };
            let status = status.map(|s| format!(" {s}")).unwrap_or_default();
            Err(TokenFailure {
                kind: ErrorKind::Auth,
                message: format!("token endpoint {endpoint} answered{status}: {said}"),
                verdict,
            })
        }
    }
}

/// The guarded client as the `oauth2` crate calls one, noting the status of what came back.
struct Guarded<'a> {
    outbound: &'a Outbound,
    timeout: Duration,
    status: Mutex<Option<u16>>,
}

impl<'c> oauth2::AsyncHttpClient<'c> for Guarded<'_> {
    type Error = Transport;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, Transport>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(send(self.outbound, request, self.timeout, &self.status))
    }
}

/// Sends the crate's token request through the guarded client.
async fn send(
    outbound: &Outbound,
    http_request: HttpRequest,
    timeout: Duration,
    status: &Mutex<Option<u16>>,
) -> Result<HttpResponse, Transport> {
    let failed = |message: String| Transport {
        kind: ErrorKind::Request,
        message,
    };
    let url =
        url::Url::parse(&http_request.uri().to_string()).map_err(|e| failed(e.to_string()))?;
    let method = Method::parse(http_request.method().as_str())
        .ok_or_else(|| failed(format!("method {}", http_request.method())))?;
    let mut headers: Vec<(String, String)> = http_request
        .headers()
        .iter()
        .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_owned())))
        .collect();
    headers.push(("user-agent".into(), USER_AGENT.into()));
    let request = Request {
        method,
        url,
        headers,
        body: http_request.into_body(),
    };
    let delivered = transport::send(outbound, request, timeout).await;
    if let Some((kind, message)) = delivered.error {
        return Err(Transport { kind, message });
    }
    let code = delivered.status.unwrap_or(500);
    *status.lock().unwrap_or_else(|e| e.into_inner()) = Some(code);
    let mut response = oauth2::http::Response::builder().status(code);
    for (name, value) in &delivered.headers {
        response = response.header(name, value);
    }
    response
        .body(delivered.body.unwrap_or_default().into_bytes())
        .map_err(|e| failed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_credential_is_another_token() {
        let request = TokenRequest {
            token_url: url::Url::parse("https://auth.example.com/token").unwrap(),
            client_id: "herald".into(),
            client_secret: "s1".into(),
            scope: Some("notes:write".into()),
            audience: None,
            client_auth: ClientAuth::Basic,
        };
        let action = ActionId::new();
        let mut changed = request.clone();
        changed.client_secret = "s2".into();
        assert_eq!(request.key(action), request.key(action));
        assert_ne!(request.key(action), changed.key(action));
        assert_ne!(request.key(action), request.key(ActionId::new()));
        assert!(!format!("{request:?}").contains("s1"));
    }
}
