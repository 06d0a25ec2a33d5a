//! The scheduler service: takes delayed jobs from the broker into PostgreSQL, releases them
//! when due, and re-sends events whose publication was lost.

use std::sync::Arc;
use std::time::Duration;

use herald_common::broker::topology::SCHEDULER_QUEUE;
use herald_common::broker::{ConsumerOptions, run_consumer};
use herald_common::config::{Config, ServiceName};
use herald_common::service::{Base, Running};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::clock::{Clock, SystemClock};
use crate::intake::Intake;
use crate::outbox::OutboxSweep;
use crate::release::Releaser;

/// Starts the scheduler on the system clock.
pub async fn start(config: Config, shutdown: CancellationToken) -> anyhow::Result<Running> {
    start_with_clock(config, shutdown, SystemClock).await
}

/// Starts the scheduler on `clock` (tests pass a manual one).
pub async fn start_with_clock<C: Clock + Clone>(
    config: Config,
    shutdown: CancellationToken,
    clock: C,
) -> anyhow::Result<Running> {
    let base = Base::start(ServiceName::Scheduler, config, shutdown.clone()).await?;
    let wake = Arc::new(Notify::new());
    let intake = Intake {
        store: base.store.clone(),
        publisher: base.publisher.clone(),
        metrics: base.metrics.clone(),
        wake: wake.clone(),
    };
    let options = ConsumerOptions {
        queue: SCHEDULER_QUEUE,
        prefetch: base.config.amqp.prefetch,
        batch_max: 256,
        linger: Duration::from_millis(1),
        max_batches_in_flight: 2,
        grace: base.config.shutdown.grace(),
    };
    base.tasks.spawn(run_consumer(
        base.consume_link.clone(),
        options,
        Arc::new(intake),
        shutdown.clone(),
    ));
    let releaser = Arc::new(Releaser {
        store: base.store.clone(),
        publisher: base.publisher.clone(),
        metrics: base.metrics.clone(),
        clock: clock.clone(),
        batch_size: base.config.scheduler.batch_size,
        hold_for: Duration::from_secs(base.config.scheduler.claim_ttl_s),
        poll_interval: Duration::from_millis(base.config.scheduler.poll_interval_ms),
        wake,
    });
    for _ in 0..base.config.scheduler.release_workers {
        base.tasks.spawn(releaser.clone().run(shutdown.clone()));
    }
    let sweep = OutboxSweep {
        store: base.store.clone(),
        publisher: base.publisher.clone(),
        metrics: base.metrics.clone(),
        clock,
        stale_after: Duration::from_secs(30),
        interval: Duration::from_secs(5),
    };
    base.tasks.spawn(sweep.run(shutdown.clone()));
    Ok(base.into_running(None))
}
