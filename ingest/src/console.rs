//! The operator console: a page and its scripts at `/ui`, compiled into the binary (no build
//! step, no files to deploy). The assets hold no data and need no key; every piece of data
//! the console shows comes from the API with the key the operator signs in with, so the
//! console can do exactly what that key can and nothing more.

use axum::Router;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::error::ApiError;

/// Each asset: its path under `/ui/`, media type and contents.
const ASSETS: &[(&str, &str, &str)] = &[
    ("console.css", CSS, include_str!("../console/console.css")),
    ("js/app.js", JS, include_str!("../console/js/app.js")),
    ("js/api.js", JS, include_str!("../console/js/api.js")),
    ("js/dom.js", JS, include_str!("../console/js/dom.js")),
    ("js/live.js", JS, include_str!("../console/js/live.js")),
    (
        "js/handlers.js",
        JS,
        include_str!("../console/js/handlers.js"),
    ),
    (
        "js/overview.js",
        JS,
        include_str!("../console/js/overview.js"),
    ),
    (
        "js/actions.js",
        JS,
        include_str!("../console/js/actions.js"),
    ),
    (
        "js/action_form.js",
        JS,
        include_str!("../console/js/action_form.js"),
    ),
    ("js/events.js", JS, include_str!("../console/js/events.js")),
    (
        "js/executions.js",
        JS,
        include_str!("../console/js/executions.js"),
    ),
    (
        "js/endpoints.js",
        JS,
        include_str!("../console/js/endpoints.js"),
    ),
];
const INDEX: &str = include_str!("../console/index.html");
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";

/// Scripts and styles only from here, data only from this origin, and never framed: an
/// injected string can neither run nor phone home, and the console cannot be clickjacked.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
    base-uri 'none'; frame-ancestors 'none'";

pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route(
            "/ui/",
            get(|| async { serve("text/html; charset=utf-8", INDEX) }),
        )
        .route("/ui/{*path}", get(asset))
}

async fn asset(Path(path): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == path) {
        Some((_, media_type, body)) => serve(media_type, body),
        None => ApiError::not_found("console file").into_response(),
    }
}

fn serve(media_type: &'static str, body: &'static str) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, media_type),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            // Small, and replaced with every release: always ask, never serve a stale script.
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}
