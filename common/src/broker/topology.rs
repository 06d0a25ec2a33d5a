//! Exchanges, queues and bindings. Every service declares all of them at start and after each
//! reconnection; declaring is idempotent as long as the arguments never change.
//!
//! ```text
//!  publishers ──► herald.events (topic) ──#──► herald.matcher.events ──► matcher
//!  matcher ─────► herald.jobs (direct) ──first──► herald.executor.first ──► executor
//!  scheduler ───► herald.jobs (direct) ──retry──► herald.executor.retry ──► executor
//!  executor ────► herald.delayed (direct) ──delayed──► herald.scheduler.delayed ──► scheduler
//!  any consumer ► herald.dead (fanout) ──► herald.dead   (undecodable or poison messages)
//!  executor ────► herald.failed (fanout) ──► herald.failed   (executions that ended failed)
//! ```

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, ExchangeKind};

pub const EVENTS_EXCHANGE: &str = "herald.events";
pub const JOBS_EXCHANGE: &str = "herald.jobs";
pub const DELAYED_EXCHANGE: &str = "herald.delayed";
pub const DEAD_EXCHANGE: &str = "herald.dead";
/// Executions whose attempts ran out or failed for good, one `ExecutionFailed` each, for
/// whoever wants to act on them (the dead-letter view in PostgreSQL holds them too).
pub const FAILED_EXCHANGE: &str = "herald.failed";

pub const MATCHER_QUEUE: &str = "herald.matcher.events";
pub const EXECUTOR_FIRST_QUEUE: &str = "herald.executor.first";
pub const EXECUTOR_RETRY_QUEUE: &str = "herald.executor.retry";
pub const SCHEDULER_QUEUE: &str = "herald.scheduler.delayed";
pub const DEAD_QUEUE: &str = "herald.dead";
pub const FAILED_QUEUE: &str = "herald.failed";

pub const DELAYED_ROUTING_KEY: &str = "delayed";

/// Redeliveries after which the broker itself dead-letters a message that keeps failing (for
/// example one that crashes its consumer). Fixed: queue arguments cannot change once declared.
pub const DELIVERY_LIMIT: i64 = 20;

/// Header carrying the reason a message was dead-lettered by Herald.
pub const DEAD_REASON_HEADER: &str = "x-herald-dead-reason";
/// Header carrying the stable code of that reason.
pub const DEAD_CODE_HEADER: &str = "x-herald-dead-code";
/// Header carrying the queue the message was consumed from.
pub const DEAD_QUEUE_HEADER: &str = "x-herald-dead-queue";

fn work_queue_arguments() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    args.insert(
        "x-delivery-limit".into(),
        AMQPValue::LongLongInt(DELIVERY_LIMIT),
    );
    args.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(DEAD_EXCHANGE.into()),
    );
    args.insert(
        "x-dead-letter-strategy".into(),
        AMQPValue::LongString("at-least-once".into()),
    );
    args.insert(
        "x-overflow".into(),
        AMQPValue::LongString("reject-publish".into()),
    );
    args
}

fn dead_queue_arguments() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    args
}

async fn exchange(channel: &Channel, name: &str, kind: ExchangeKind) -> lapin::Result<()> {
    let options = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .exchange_declare(name.into(), kind, options, FieldTable::default())
        .await
}

async fn queue(channel: &Channel, name: &str, args: FieldTable) -> lapin::Result<()> {
    let options = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .queue_declare(name.into(), options, args)
        .await
        .map(|_| ())
}

async fn bind(channel: &Channel, queue: &str, exchange: &str, key: &str) -> lapin::Result<()> {
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
}

/// Declares the whole topology.
pub async fn declare(channel: &Channel) -> lapin::Result<()> {
    exchange(channel, EVENTS_EXCHANGE, ExchangeKind::Topic).await?;
    exchange(channel, JOBS_EXCHANGE, ExchangeKind::Direct).await?;
    exchange(channel, DELAYED_EXCHANGE, ExchangeKind::Direct).await?;
    exchange(channel, DEAD_EXCHANGE, ExchangeKind::Fanout).await?;

    queue(channel, DEAD_QUEUE, dead_queue_arguments()).await?;
    bind(channel, DEAD_QUEUE, DEAD_EXCHANGE, "").await?;
    exchange(channel, FAILED_EXCHANGE, ExchangeKind::Fanout).await?;
    queue(channel, FAILED_QUEUE, dead_queue_arguments()).await?;
    bind(channel, FAILED_QUEUE, FAILED_EXCHANGE, "").await?;

    queue(channel, MATCHER_QUEUE, work_queue_arguments()).await?;
    bind(channel, MATCHER_QUEUE, EVENTS_EXCHANGE, "#").await?;
    queue(channel, EXECUTOR_FIRST_QUEUE, work_queue_arguments()).await?;
    bind(channel, EXECUTOR_FIRST_QUEUE, JOBS_EXCHANGE, "first").await?;
    queue(channel, EXECUTOR_RETRY_QUEUE, work_queue_arguments()).await?;
    bind(channel, EXECUTOR_RETRY_QUEUE, JOBS_EXCHANGE, "retry").await?;
    queue(channel, SCHEDULER_QUEUE, work_queue_arguments()).await?;
    bind(
        channel,
        SCHEDULER_QUEUE,
        DELAYED_EXCHANGE,
        DELAYED_ROUTING_KEY,
    )
    .await?;
    Ok(())
}
