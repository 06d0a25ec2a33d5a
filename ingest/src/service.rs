//! Building and starting ingest: the router (also used by tests) and the service around it.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use anyhow::Context;
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use herald_common::broker::Backlog;
use herald_common::broker::topology::{EXECUTOR_FIRST_QUEUE, EXECUTOR_RETRY_QUEUE, MATCHER_QUEUE};
use herald_common::config::{Config, ServiceName};
use herald_common::metrics::{Metrics, http_method_label};
use herald_common::service::{Base, Running};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::OPERATIONS;
use crate::batcher::EventBatcher;
use herald_engine::feed::live_engine;

use crate::error::ApiError;
use crate::rate_limit::TenantLimiter;
use herald_handlers::Outbound;

use crate::state::AppState;

/// The public API's routes: every operation of [`OPERATIONS`], nothing else.
pub fn router(state: AppState) -> Router {
    let body_limit = state.config.max_body_bytes;
    OPERATIONS
        .iter()
        .fold(Router::new(), |router, operation| {
            router.route(operation.path, (operation.handler)())
        })
        .fallback(|| async { ApiError::not_found("route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                crate::error_codes::ErrorCode::MethodNotAllowed,
                "this path does not take that method",
            )
        })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(
            state.metrics.clone(),
            record_request,
        ))
        .with_state(state)
}

/// RED metrics per route template (never the raw path, which carries ids).
async fn record_request(State(metrics): State<Metrics>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    // A fixed set: a client may send any token as a method.
    let method = http_method_label(request.method().as_str());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics
        .http_requests
        .with_label_values(&[&route, method, &status])
        .inc();
    metrics
        .http_request_duration
        .with_label_values(&[&route, method])
        .observe(started.elapsed().as_secs_f64());
    response
}

/// Starts ingest: the API on `http.listen` (with `/healthz`, `/readyz`, `/metrics` on it too)
/// and the operations server on `ops.listen`.
pub async fn start(config: Config, shutdown: CancellationToken) -> anyhow::Result<Running> {
    let base = Base::start(ServiceName::Ingest, config, shutdown.clone()).await?;
    let ingest = base.config.ingest.clone();
    let (batcher, batcher_task) = EventBatcher::start(
        base.store.clone(),
        base.publisher.clone(),
        base.metrics.clone(),
        ingest.batch_max_events,
        Duration::from_micros(ingest.batch_linger_us),
    );
    // What waits ahead of delivery: the matcher's events and the executor's jobs.
    let (backlog, sampling) = Backlog::watch(
        base.publisher.link().clone(),
        &[MATCHER_QUEUE, EXECUTOR_FIRST_QUEUE, EXECUTOR_RETRY_QUEUE],
        base.metrics.clone(),
        shutdown.clone(),
    );
    base.tasks.spawn(sampling);
    let batcher = batcher.with_admission(backlog, ingest.max_backlog);
    let (engine, _) = live_engine(&base).await?;
    let executor = &base.config.executor;
    let outbound =
        Outbound::from_config(executor).context("building the HTTP client for test deliveries")?;
    let state = AppState {
        engine,
        store: base.store.clone(),
        metrics: base.metrics.clone(),
        batcher,
        admin_token: Arc::from(ingest.admin_token.as_str()),
        limits: ingest.event_limits(),
        limiter: Arc::new(TenantLimiter::new(
            ingest.tenant_rate_per_s,
            ingest.tenant_burst,
        )),
        config: Arc::new(ingest),
        outbound,
        clock: base.clock.clone(),
        shutdown: shutdown.clone(),
        live_streams: Default::default(),
    };
    let app = router(state)
        .merge(crate::console::router())
        .merge(herald_common::ops::router(base.health()));
    let listener = TcpListener::bind(base.config.http.listen)
        .await
        .with_context(|| format!("binding the API listener {}", base.config.http.listen))?;
    let api_addr = listener.local_addr()?;
    let stop = shutdown.clone();
    base.tasks.spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
        if let Err(error) = served {
            tracing::error!(%error, "API server failed");
        }
        // Requests have drained: let the batcher flush what it holds, then end.
        let _ = batcher_task.await;
    });
    Ok(base.into_running(Some(api_addr)))
}
