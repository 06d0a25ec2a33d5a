//! The scheduler service: takes delayed jobs from the broker into PostgreSQL and releases them
//! when due; re-sends events whose publication was lost and executions that got stuck; carries
//! out retries by filter; deletes records past their retention.

use std::sync::Arc;
use std::time::Duration;

use herald_common::broker::topology::SCHEDULER_QUEUE;
use herald_common::broker::{ConsumerOptions, run_consumer};
use herald_common::config::{Config, ServiceName};
use herald_common::service::{Base, Running};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::bulk::BulkRetries;
use crate::gauges::Gauges;
use crate::intake::Intake;
use crate::outbox::OutboxSweep;
use crate::periodic::every;
use crate::recovery::Recovery;
use crate::release::Releaser;
use crate::retention::Retention;
use herald_common::clock::{Clock, SystemClock};

/// How often the outbox is swept, and how long an event may wait for the matcher first.
const OUTBOX_INTERVAL: Duration = Duration::from_secs(5);
const OUTBOX_STALE_AFTER: Duration = Duration::from_secs(30);
/// How often waiting bulk retries are looked for.
const BULK_RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// How often the backlog and queue-depth gauges are sampled.
const GAUGES_INTERVAL: Duration = Duration::from_secs(5);

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
    let mut base = Base::start(ServiceName::Scheduler, config, shutdown.clone()).await?;
    base.clock = Arc::new(clock.clone());
    let settings = base.config.scheduler.clone();
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
        batch_size: settings.batch_size,
        hold_for: Duration::from_secs(settings.claim_ttl_s),
        poll_interval: Duration::from_millis(settings.poll_interval_ms),
        wake,
    });
    for _ in 0..settings.release_workers {
        base.tasks.spawn(releaser.clone().run(shutdown.clone()));
    }

    let sweep = Arc::new(OutboxSweep {
        store: base.store.clone(),
        publisher: base.publisher.clone(),
        metrics: base.metrics.clone(),
        clock: clock.clone(),
        stale_after: OUTBOX_STALE_AFTER,
    });
    base.tasks.spawn(every(
        "outbox sweep",
        OUTBOX_INTERVAL,
        shutdown.clone(),
        move || {
            let sweep = sweep.clone();
            async move { sweep.sweep_once().await.map(drop) }
        },
    ));

    let recovery = Arc::new(Recovery {
        store: base.store.clone(),
        metrics: base.metrics.clone(),
        clock: clock.clone(),
        lease: Duration::from_secs(base.config.executor.lease_s),
        overdue_after: Duration::from_secs(settings.overdue_after_s),
    });
    base.tasks.spawn(every(
        "recovery of stuck executions",
        Duration::from_secs(settings.recovery_interval_s),
        shutdown.clone(),
        move || {
            let recovery = recovery.clone();
            async move { recovery.recover_once().await.map(drop) }
        },
    ));

    let bulk = Arc::new(BulkRetries {
        store: base.store.clone(),
        metrics: base.metrics.clone(),
        clock: clock.clone(),
        page: settings.bulk_retry_page,
        between_pages: Duration::from_millis(10),
    });
    base.tasks.spawn(every(
        "bulk retry",
        BULK_RETRY_INTERVAL,
        shutdown.clone(),
        move || {
            let bulk = bulk.clone();
            async move { bulk.run_once().await.map(drop) }
        },
    ));

    let gauges = Arc::new(Gauges {
        store: base.store.clone(),
        publisher: base.publisher.clone(),
        metrics: base.metrics.clone(),
        clock: clock.clone(),
    });
    base.tasks.spawn(every(
        "sampling the backlog and queue depths",
        GAUGES_INTERVAL,
        shutdown.clone(),
        move || {
            let gauges = gauges.clone();
            async move { gauges.sample_once().await }
        },
    ));

    let retention = Arc::new(Retention {
        store: base.store.clone(),
        metrics: base.metrics.clone(),
        clock,
        config: base.config.retention.clone(),
    });
    base.tasks.spawn(every(
        "retention",
        Duration::from_secs(base.config.retention.interval_s),
        shutdown.clone(),
        move || {
            let retention = retention.clone();
            async move { retention.run_once().await.map(drop) }
        },
    ));
    Ok(base.into_running(None))
}
