//! The shape every periodic loop of the scheduler shares: do one round, log a failure
//! (the next round tries again), wait, repeat until shutdown.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Runs `round` every `interval` until `shutdown`. A round that fails is logged as `what`.
pub async fn every<F, Fut>(
    what: &str,
    interval: Duration,
    shutdown: CancellationToken,
    mut round: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    while !shutdown.is_cancelled() {
        if let Err(error) = round().await {
            tracing::warn!(error = format!("{error:#}"), "{what} failed");
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}
