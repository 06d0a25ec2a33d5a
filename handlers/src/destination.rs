//! Where an HTTP-speaking handler sends: its URL, checked once when the action is saved, and
//! the endpoint (`scheme://host:port`) that circuit breakers and per-destination limits key on.

use herald_common::action::ActionError;

use crate::template::{Builder, Kind, RenderContext, RenderError, Templates, Text, is_template};

/// Longest URL: what HTTP servers commonly accept on a request line.
pub const MAX_URL_LEN: usize = 8192;

/// Reads an http(s) URL named `field`: one the client can send and a resolver can answer for.
pub fn parse_url(field: &str, text: &str) -> Result<url::Url, ActionError> {
    if text.len() > MAX_URL_LEN {
        return Err(ActionError::new(
            field,
            format!("must be at most {MAX_URL_LEN} bytes (the HTTP client refuses longer)"),
        ));
    }
    let url = url::Url::parse(text)
        .map_err(|e| ActionError::new(field, format!("is not a valid URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(ActionError::new(
            field,
            "must be an http or https URL with a host",
        ));
    }
    if let Some(url::Host::Domain(name)) = url.host()
        && (name.len() > 253 || name.split('.').any(|label| label.len() > 63))
    {
        // No resolver answers for it: every attempt would fail.
        return Err(ActionError::new(
            field,
            "has a host name longer than DNS allows (253 characters, 63 per label)",
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ActionError::new(
            field,
            "must not carry credentials; use handler.headers",
        ));
    }
    Ok(url)
}

/// The destination a URL reaches, as circuits and isolation key it: `scheme://host:port`.
pub fn endpoint_of(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    let port = url.port_or_known_default().unwrap_or_default();
    format!("{}://{host}:{port}", url.scheme())
}

/// A URL whose path and query may be templates: its scheme, host and port are written out, so
/// that the SSRF guard and the circuit see the real destination before anything renders.
#[derive(Debug, Clone, PartialEq)]
pub struct UrlTemplate {
    /// The URL with its templates unrendered, as given.
    pub source: String,
    /// Its fixed part (`scheme://host:port/`).
    pub origin: url::Url,
    text: Text,
}

impl UrlTemplate {
    /// Reads `text` (the URL named `field`): a plain URL, or one with templates after its
    /// authority.
    pub fn parse(field: &str, text: &str, builder: &mut Builder) -> Result<Self, ActionError> {
        if !is_template(text) {
            let url = parse_url(field, text)?;
            return Ok(Self {
                source: text.to_owned(),
                origin: url.clone(),
                text: Text::Literal(url.to_string()),
            });
        }
        let fixed = "the scheme, host and port must be written out: a template may fill the \
                     path and query only";
        let first = ["{{", "{%", "{#"]
            .iter()
            .filter_map(|marker| text.find(marker))
            .min()
            .unwrap_or(0);
        let before = &text[..first];
        let authority_end = before
            .find("://")
            .and_then(|scheme| before[scheme + 3..].find('/').map(|i| scheme + 3 + i))
            .ok_or_else(|| ActionError::new(field, fixed))?;
        if text.len() > MAX_URL_LEN {
            return Err(ActionError::new(
                field,
                format!("must be at most {MAX_URL_LEN} bytes"),
            ));
        }
        let origin = parse_url(field, &text[..=authority_end])?;
        Ok(Self {
            source: text.to_owned(),
            origin,
            text: builder.text(field, text, Kind::Url)?,
        })
    }

    /// The endpoint it reaches (`scheme://host:port`).
    pub fn endpoint(&self) -> String {
        endpoint_of(&self.origin)
    }

    /// The URL for one attempt: still one an HTTP client can send, at the fixed origin.
    pub fn render(
        &self,
        field: &str,
        templates: &Templates,
        ctx: &RenderContext,
    ) -> Result<url::Url, RenderError> {
        let failed = |message: String| RenderError {
            field: field.to_owned(),
            message,
        };
        let text = templates.render(&self.text, ctx)?;
        if text.len() > MAX_URL_LEN {
            return Err(failed(format!("renders more than {MAX_URL_LEN} bytes")));
        }
        let url = url::Url::parse(&text)
            .map_err(|e| failed(format!("renders {text:?}, which is not a URL: {e}")))?;
        if url.origin() != self.origin.origin() || !url.username().is_empty() {
            return Err(failed(format!(
                "renders {text:?}, which leaves {}",
                endpoint_of(&self.origin)
            )));
        }
        Ok(url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_scheme_host_and_port() {
        let table = [
            ("https://example.com/hook", "https://example.com:443"),
            ("http://example.com/a?b=1", "http://example.com:80"),
            ("http://127.0.0.1:8080/x", "http://127.0.0.1:8080"),
            ("https://[::1]:9443/", "https://[::1]:9443"),
        ];
        for (url, endpoint) in table {
            let url = parse_url("url", url).unwrap();
            assert_eq!(endpoint_of(&url), endpoint);
        }
    }

    #[test]
    fn urls_nobody_could_send_to_are_refused() {
        let refused = [
            "ftp://x".to_owned(),
            "https://u:p@x".to_owned(),
            "not a url".to_owned(),
            format!("https://x/{}", "p".repeat(8192)),
            format!("https://{}.com/", "a".repeat(64)),
            format!("https://{}com/", "a.".repeat(127)),
        ];
        for url in refused {
            assert!(parse_url("url", &url).is_err(), "{url}");
        }
        assert!(parse_url("url", &format!("https://{}.com/", "a".repeat(63))).is_ok());
    }
}
