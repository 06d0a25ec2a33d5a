//! Closes that end: every close, cancel and drain at shutdown is waited for a bounded time.
//!
//! lapin waits for the broker's answer to `channel.close` and `connection.close`, and an
//! answer can never come: the connection went while the close was on its way, or one close
//! races another on the same connection (seen as "invalid channel state: Closing" and a test
//! that passed but never stopped). A close not answered in time is given up: the broker
//! drops the channel with the connection and returns its unacknowledged deliveries, which is
//! all a close at shutdown is for.

use std::future::Future;
use std::time::Duration;

use lapin::Channel;

/// Longest one close at shutdown is waited for.
pub const CLOSE_WITHIN: Duration = Duration::from_secs(5);

/// Runs `work` for at most [`CLOSE_WITHIN`]; `None` (and a warning naming `what`) if it did
/// not end in time.
pub async fn within_close<T>(what: &str, work: impl Future<Output = T>) -> Option<T> {
    let ended = tokio::time::timeout(CLOSE_WITHIN, work).await.ok();
    if ended.is_none() {
        tracing::warn!(what, within = ?CLOSE_WITHIN, "a close at shutdown was not answered in time; going on");
    }
    ended
}

/// Closes `channel` (if it is still open) with `reason`, for at most [`CLOSE_WITHIN`].
pub async fn close_channel(channel: &Channel, reason: &str) {
    if channel.status().connected() {
        let _ = within_close(reason, channel.close(200, reason.into())).await;
    }
}
