//! Many callers' requests, one database round trip: each caller awaits its own answer while a
//! single task sends whatever has queued up since the last round trip finished.
//!
//! No timer: under light load a request goes alone at once (no added latency); under heavy
//! load requests pile up while the previous batch is in flight and go together.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use herald_common::store::{WriteFailure, is_data_error_in, write_isolated};
use tokio::sync::{mpsc, oneshot};

type Reply<T> = oneshot::Sender<Result<T, CallError>>;

/// Why a call got no answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// The database refused this call's own data; the calls batched with it went through.
    #[error("the database refused the request's data: {0:#}")]
    Refused(Arc<anyhow::Error>),
    /// The round trip failed for every call in it (the database away, say).
    #[error("{0:#}")]
    Failed(Arc<anyhow::Error>),
    #[error("the batching task has stopped")]
    Stopped,
}

/// A handle on a batching task; cheap to clone.
pub struct Batcher<Req, Resp> {
    requests: mpsc::UnboundedSender<(Req, Reply<Resp>)>,
}

impl<Req, Resp> Clone for Batcher<Req, Resp> {
    fn clone(&self) -> Self {
        Self {
            requests: self.requests.clone(),
        }
    }
}

impl<Req: Send + Sync + 'static, Resp: Send + 'static> Batcher<Req, Resp> {
    /// Starts the task: `run` gets up to `max` requests at a time and answers each, in order.
    /// A batch the database refuses for its data is run again in halves, so that only the
    /// request at fault is refused (see `herald_common::store::write_isolated`).
    pub fn spawn<F>(max: usize, run: F) -> Self
    where
        F: for<'a> Fn(&'a [Req]) -> BoxFuture<'a, anyhow::Result<Vec<Resp>>>
            + Send
            + Sync
            + 'static,
    {
        let (requests, mut queue) = mpsc::unbounded_channel::<(Req, Reply<Resp>)>();
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(max);
            while queue.recv_many(&mut batch, max).await > 0 {
                let (reqs, replies): (Vec<Req>, Vec<Reply<Resp>>) = batch.drain(..).unzip();
                let answers =
                    write_isolated(reqs.len(), is_data_error_in, |range| run(&reqs[range])).await;
                for (reply, answer) in replies.into_iter().zip(answers) {
                    let _ = reply.send(answer.map_err(|failure| match failure {
                        WriteFailure::Refused(error) => CallError::Refused(Arc::new(error)),
                        WriteFailure::Failed(error) => CallError::Failed(error),
                        WriteFailure::Unanswered => CallError::Failed(Arc::new(anyhow::anyhow!(
                            "the batch answered fewer results than it was given requests"
                        ))),
                    }));
                }
            }
        });
        Self { requests }
    }

    /// Sends one request and waits for its answer.
    pub async fn call(&self, request: Req) -> Result<Resp, CallError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send((request, reply))
            .map_err(|_| CallError::Stopped)?;
        answer.await.unwrap_or(Err(CallError::Stopped))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn concurrent_calls_share_round_trips_and_get_their_own_answers() {
        let rounds = Arc::new(AtomicUsize::new(0));
        let counted = rounds.clone();
        let doubler = Batcher::spawn(64, move |numbers: &[u32]| {
            let counted = counted.clone();
            Box::pin(async move {
                counted.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                Ok(numbers.iter().map(|n| n * 2).collect())
            })
        });
        let calls = (0..200).map(|n| {
            let doubler = doubler.clone();
            async move { doubler.call(n).await.unwrap() }
        });
        let answers = futures_util::future::join_all(calls).await;
        assert_eq!(answers, (0..200).map(|n| n * 2).collect::<Vec<_>>());
        assert!(rounds.load(Ordering::Relaxed) < 20, "calls were batched");
    }

    #[tokio::test]
    async fn a_failed_batch_fails_each_of_its_calls() {
        let failing: Batcher<u32, u32> = Batcher::spawn(8, |_: &[u32]| {
            Box::pin(async { anyhow::bail!("database down") })
        });
        let error = failing.call(1).await.unwrap_err();
        assert!(matches!(error, CallError::Failed(_)), "{error:?}");
        assert!(error.to_string().contains("database down"));
    }
}
