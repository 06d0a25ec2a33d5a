//! Group commit: how `gather` makes a batch from what is waiting and the writes in flight.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use herald_common::event::{EventLimits, IncomingEvent};
use herald_common::ids::TenantId;
use herald_common::metrics::{Door, Metrics, Stage};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::time::Instant;

use super::{Submission, gather};

fn submission(metrics: &Metrics, events: usize) -> Submission {
    let incoming = || -> IncomingEvent {
        serde_json::from_str(r#"{"type":"user.created","data":{"n":1}}"#).unwrap()
    };
    let tenant = TenantId::new();
    let events = (0..events)
        .map(|_| {
            let event = incoming()
                .validate(tenant, None, Utc::now(), &EventLimits::default())
                .unwrap();
            (event, None)
        })
        .collect();
    Submission {
        events,
        door: Door::Http,
        work: metrics.stage_enter(Stage::Ingest, 0),
        reply: oneshot::channel().0,
        queued_at: Instant::now(),
    }
}

struct Case {
    name: &'static str,
    /// Writes in flight when the first submission arrives (of 2).
    busy: u32,
    /// Submissions already waiting behind the first, and their events each.
    waiting: usize,
    events_each: usize,
    linger: Duration,
    batch_max: usize,
    /// Submissions in the batch written.
    expected: usize,
    /// Whether the batch goes before a busy write ends.
    goes_before_a_write_ends: bool,
}

#[tokio::test]
async fn a_batch_goes_when_a_write_is_free_with_whatever_waited() {
    let cases = [
        Case {
            name: "alone, a write free: at once",
            busy: 0,
            waiting: 0,
            events_each: 1,
            linger: Duration::ZERO,
            batch_max: 256,
            expected: 1,
            goes_before_a_write_ends: true,
        },
        Case {
            name: "others waiting, a write free: all of them at once",
            busy: 0,
            waiting: 5,
            events_each: 1,
            linger: Duration::ZERO,
            batch_max: 256,
            expected: 6,
            goes_before_a_write_ends: true,
        },
        Case {
            name: "every write busy: waits for one, with what came meanwhile",
            busy: 2,
            waiting: 3,
            events_each: 1,
            linger: Duration::ZERO,
            batch_max: 256,
            expected: 4,
            goes_before_a_write_ends: false,
        },
        Case {
            name: "full: no more than the batch's events",
            busy: 0,
            waiting: 9,
            events_each: 2,
            linger: Duration::ZERO,
            batch_max: 6,
            expected: 3,
            goes_before_a_write_ends: true,
        },
        Case {
            name: "a linger: the first waits it out though a write is free",
            busy: 0,
            waiting: 0,
            events_each: 1,
            linger: Duration::from_millis(100),
            batch_max: 256,
            expected: 1,
            goes_before_a_write_ends: false,
        },
    ];
    for case in cases {
        let metrics = Metrics::new("test");
        let (sender, mut receiver) = mpsc::channel(64);
        let flushes = Arc::new(Semaphore::new(2));
        let busy = flushes.clone().acquire_many_owned(case.busy).await.unwrap();
        for _ in 0..case.waiting {
            sender
                .send(submission(&metrics, case.events_each))
                .await
                .unwrap();
        }
        let mut batch = vec![submission(&metrics, case.events_each)];
        let started = Instant::now();
        {
            let gathering = gather(
                &mut receiver,
                &mut batch,
                &flushes,
                case.batch_max,
                case.linger,
            );
            tokio::pin!(gathering);
            let early = tokio::time::timeout(Duration::from_millis(50), &mut gathering).await;
            assert_eq!(
                early.is_ok(),
                case.goes_before_a_write_ends,
                "{}",
                case.name
            );
            if early.is_err() {
                drop(busy);
                let permit = tokio::time::timeout(Duration::from_secs(1), gathering)
                    .await
                    .unwrap_or_else(|_| panic!("{}: never went", case.name));
                assert!(permit.is_some(), "{}", case.name);
            }
        }
        assert_eq!(batch.len(), case.expected, "{}", case.name);
        if !case.linger.is_zero() {
            assert!(started.elapsed() >= case.linger, "{}", case.name);
        }
    }
}

#[tokio::test]
async fn a_closed_batcher_writes_what_it_holds() {
    let metrics = Metrics::new("test");
    let (sender, mut receiver) = mpsc::channel(8);
    let flushes = Arc::new(Semaphore::new(1));
    let busy = flushes.clone().acquire_owned().await.unwrap();
    sender.send(submission(&metrics, 1)).await.unwrap();
    drop(sender);
    let mut batch = vec![submission(&metrics, 1)];
    {
        let gathering = gather(&mut receiver, &mut batch, &flushes, 256, Duration::ZERO);
        tokio::pin!(gathering);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), &mut gathering)
                .await
                .is_err(),
            "it still waits for a write"
        );
        drop(busy);
        assert!(gathering.await.is_some());
    }
    assert_eq!(batch.len(), 2);
}
