//! Waiting for a condition instead of sleeping a fixed time.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

/// Polls `check` every 50 ms until it returns `Some`, and returns that value. Panics with
/// `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    eventually_showing(what, timeout, || {
        let checked = check();
        async move { checked.await.ok_or("") }
    })
    .await
}

/// As [`eventually`], for a check that says what it saw when the condition does not hold yet
/// (`Err`): the panic at the timeout shows the last of it, so that a stall in CI says where
/// things stood.
pub async fn eventually_showing<T, S, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, S>>,
    S: Display,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let seen = match check().await {
            Ok(value) => return value,
            Err(seen) => seen,
        };
        if tokio::time::Instant::now() >= deadline {
            let seen = seen.to_string();
            if seen.is_empty() {
                panic!("timed out after {timeout:?} waiting for {what}");
            }
            panic!("timed out after {timeout:?} waiting for {what}; last seen: {seen}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
