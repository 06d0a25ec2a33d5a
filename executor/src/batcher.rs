//! Many callers' requests, one database round trip: each caller awaits its own answer while a
//! single task sends whatever has queued up since the last round trip finished.
//!
//! No timer: under light load a request goes alone at once (no added latency); under heavy
//! load requests pile up while the previous batch is in flight and go together.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

type Reply<T> = oneshot::Sender<Result<T, Arc<anyhow::Error>>>;

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

impl<Req: Send + 'static, Resp: Send + 'static> Batcher<Req, Resp> {
    /// Starts the task: `run` gets up to `max` requests at a time and answers each, in order.
    pub fn spawn<F, Fut>(max: usize, run: F) -> Self
    where
        F: Fn(Vec<Req>) -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<Vec<Resp>>> + Send,
    {
        let (requests, mut queue) = mpsc::unbounded_channel::<(Req, Reply<Resp>)>();
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(max);
            while queue.recv_many(&mut batch, max).await > 0 {
                let (reqs, replies): (Vec<Req>, Vec<Reply<Resp>>) = batch.drain(..).unzip();
                let count = reqs.len();
                match run(reqs).await {
                    Ok(answers) if answers.len() == count => {
                        for (reply, answer) in replies.into_iter().zip(answers) {
                            let _ = reply.send(Ok(answer));
                        }
                    }
                    Ok(answers) => {
                        let error = Arc::new(anyhow::anyhow!(
                            "a batch of {count} got {} answers",
                            answers.len()
                        ));
                        for reply in replies {
                            let _ = reply.send(Err(error.clone()));
                        }
                    }
                    Err(error) => {
                        let error = Arc::new(error);
                        for reply in replies {
                            let _ = reply.send(Err(error.clone()));
                        }
                    }
                }
            }
        });
        Self { requests }
    }

    /// Sends one request and waits for its answer.
    pub async fn call(&self, request: Req) -> anyhow::Result<Resp> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send((request, reply))
            .map_err(|_| anyhow::anyhow!("the batching task has stopped"))?;
        match answer.await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(error)) => Err(anyhow::anyhow!("{error:#}")),
            Err(_) => Err(anyhow::anyhow!("the batching task has stopped")),
        }
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
        let doubler = Batcher::spawn(64, move |numbers: Vec<u32>| {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                Ok(numbers.into_iter().map(|n| n * 2).collect())
            }
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
        let failing: Batcher<u32, u32> =
            Batcher::spawn(8, |_: Vec<u32>| async { anyhow::bail!("database down") });
        let error = failing.call(1).await.unwrap_err();
        assert!(error.to_string().contains("database down"));
    }
}
