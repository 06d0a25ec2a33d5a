//! Read your writes: an action saved before an event was accepted is in the engine that matches
//! the event.
//!
//! The feed applies a change when its notification arrives, a moment after the change commits;
//! an event accepted in that moment would otherwise be matched without the action its sender
//! has just been told is saved (seen on a busy machine within a few milliseconds of the save).
//! PostgreSQL delivers notifications in the order their transactions committed, so a
//! notification this replica sends on the actions channel after taking a batch comes after
//! every change committed before the batch's events were accepted (ingest commits an event
//! before publishing it). Once the feed, which applies notifications one at a time, reads it
//! back, the engine holds every such change. One round trip per batch, not per event, and
//! committed without waiting for the disk: a barrier is about order, not durability.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use herald_common::store::Store;
use tokio::sync::watch;

use crate::feed::CHANNEL;

/// What a barrier's payload starts with (action changes are `<tenant>:<action>`).
const PREFIX: &str = "barrier:";

/// How long a batch waits for the feed: past it the listener has likely lost its connection
/// (the feed reloads and passes every barrier sent before), and the batch is given back.
const WAIT: Duration = Duration::from_secs(5);

/// One replica's barriers on the actions channel.
pub struct Barrier {
    store: Store,
    /// Tells this replica's barriers from the other replicas' on the shared channel.
    replica: uuid::Uuid,
    sent: AtomicU64,
    passed: watch::Sender<u64>,
}

/// A notification on the actions channel that is a barrier.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Seen {
    /// One of this replica's: every change committed before it has been read.
    Mine(u64),
    /// Another replica's, to ignore.
    Other,
}

impl Barrier {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            replica: uuid::Uuid::now_v7(),
            sent: AtomicU64::new(0),
            passed: watch::Sender::new(0),
        }
    }

    /// Returns once the engine holds every action change committed before this call.
    pub async fn pass(&self) -> anyhow::Result<()> {
        let token = self.sent.fetch_add(1, Ordering::SeqCst) + 1;
        let mut passed = self.passed.subscribe();
        sqlx::query("SELECT set_config('synchronous_commit', 'off', true), pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(format!("{PREFIX}{}:{token}", self.replica))
            .execute(self.store.pool())
            .await
            .context("sending a barrier on the action change channel")?;
        tokio::time::timeout(WAIT, passed.wait_for(|seen| *seen >= token))
            .await
            .with_context(|| format!("the action feed did not pass a barrier within {WAIT:?}"))?
            .context("the action feed stopped")?;
        Ok(())
    }

    /// Reads a notification's payload: `None` when it is not a barrier.
    pub(crate) fn read(&self, payload: &str) -> Option<Seen> {
        let rest = payload.strip_prefix(PREFIX)?;
        let seen = rest
            .split_once(':')
            .filter(|(replica, _)| *replica == self.replica.to_string())
            .and_then(|(_, token)| token.parse().ok())
            .map_or(Seen::Other, Seen::Mine);
        Some(seen)
    }

    /// The feed has read barrier `token` (or reloaded everything after it was sent).
    pub(crate) fn passed(&self, token: u64) {
        self.passed.send_if_modified(|seen| {
            let newer = token > *seen;
            if newer {
                *seen = token;
            }
            newer
        });
    }

    /// The last barrier sent: a reload started now covers it and every one before.
    pub(crate) fn last_sent(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn barrier() -> Barrier {
        let options = sqlx::postgres::PgPoolOptions::new();
        let pool = options
            .connect_lazy("postgres://unused/unused")
            .expect("a lazy pool");
        Barrier::new(Store::from_pool(pool))
    }

    #[tokio::test]
    async fn payloads_tell_mine_from_others_and_from_changes() {
        let barrier = barrier();
        let mine = format!("{PREFIX}{}:7", barrier.replica);
        let other = format!("{PREFIX}{}:7", uuid::Uuid::now_v7());
        let cases = [
            (mine.as_str(), Some(Seen::Mine(7))),
            (other.as_str(), Some(Seen::Other)),
            ("barrier:garbage", Some(Seen::Other)),
            (
                "0190a1b2-0000-7000-8000-000000000000:0190a1b2-0000-7000-8000-000000000001",
                None,
            ),
        ];
        for (payload, expected) in cases {
            assert_eq!(barrier.read(payload), expected, "{payload}");
        }
    }

    #[tokio::test]
    async fn passing_only_moves_forward() {
        let barrier = barrier();
        barrier.passed(3);
        barrier.passed(2);
        assert_eq!(*barrier.passed.borrow(), 3);
    }
}
