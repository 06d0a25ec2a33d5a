//! The operations endpoints every service serves: `/healthz` (the process is alive), `/readyz`
//! (its broker and database connections are up) and `/metrics` (Prometheus text).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::broker::Link;
use crate::metrics::Metrics;
use crate::store::Store;

/// What readiness depends on.
#[derive(Clone)]
pub struct Health {
    pub links: Vec<Arc<Link>>,
    pub store: Store,
    pub metrics: Metrics,
}

impl Health {
    /// The dependencies that are down, empty when ready.
    pub async fn problems(&self) -> Vec<&'static str> {
        let mut down = Vec::new();
        if self.links.iter().any(|link| !link.is_connected()) {
            down.push("broker");
        }
        if !self.store.ping().await {
            down.push("database");
        }
        down
    }
}

async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, axum::Json(json!({"status": "ok"})))
}

async fn readyz(State(health): State<Health>) -> impl IntoResponse {
    let down = health.problems().await;
    if down.is_empty() {
        (StatusCode::OK, axum::Json(json!({"status": "ready"})))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "not_ready", "down": down})),
        )
    }
}

async fn metrics(State(health): State<Health>) -> impl IntoResponse {
    let (size, idle) = health.store.pool_usage();
    let gauge = &health.metrics.db_pool_connections;
    gauge.with_label_values(&["idle"]).set(idle as i64);
    gauge
        .with_label_values(&["used"])
        .set(i64::from(size) - idle as i64);
    let max = health.store.pool().options().get_max_connections();
    health.metrics.db_pool_max_connections.set(i64::from(max));
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        health.metrics.render(),
    )
}

/// The three routes, for mounting on a service's own router too.
pub fn router(health: Health) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(health)
}

/// Binds `addr` and serves the operations routes until `shutdown`. Returns the bound address.
pub async fn serve(
    addr: SocketAddr,
    health: Health,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = router(health);
    let handle = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(error) = served {
            tracing::error!(%error, "operations server failed");
        }
    });
    Ok((bound, handle))
}
