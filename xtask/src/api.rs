//! A minimal client of Herald's HTTP API for the developer commands.

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// A minimal client of Herald's HTTP API.
pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
}

impl Api {
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Value,
    ) -> anyhow::Result<Value> {
        let method = reqwest::Method::from_bytes(method.as_bytes())?;
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(token);
        if !body.is_null() {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("{method} {path} answered {status}: {text}");
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Creates a tenant named `name` and a key for it, with the admin token: (tenant id, key).
    pub async fn tenant_with_key(
        &self,
        admin: &str,
        name: &str,
    ) -> anyhow::Result<(String, String)> {
        let tenant = self
            .call("POST", "/v1/tenants", admin, json!({"name": name}))
            .await?;
        let id = tenant["id"].as_str().context("tenant id")?.to_owned();
        let key = self
            .call(
                "POST",
                &format!("/v1/tenants/{id}/keys"),
                admin,
                json!({"name": name}),
            )
            .await?;
        let key = key["key"].as_str().context("api key")?.to_owned();
        Ok((id, key))
    }
}
