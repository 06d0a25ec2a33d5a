-- Herald's store. Every tenant-owned table carries tenant_id and every query filters on it.

CREATE TABLE tenants (
    id          uuid PRIMARY KEY,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id          uuid PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name        text NOT NULL DEFAULT '',
    -- SHA-256 of the whole key; the key itself is shown once and never stored.
    key_hash    bytea NOT NULL UNIQUE,
    -- The first characters of the key, so an operator can tell keys apart.
    key_prefix  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

CREATE TABLE actions (
    id                uuid PRIMARY KEY,
    tenant_id         uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name              text NOT NULL,
    description       text,
    event_types       text[] NOT NULL,
    source            text,
    conditions        jsonb NOT NULL DEFAULT '[]',
    priority          integer NOT NULL DEFAULT 100,
    mode              text NOT NULL DEFAULT 'async' CHECK (mode IN ('async', 'sync')),
    handler_type      text NOT NULL,
    handler           jsonb NOT NULL,
    retry             jsonb NOT NULL,
    rate_limit_per_s  integer,
    max_concurrency   integer,
    enabled           boolean NOT NULL DEFAULT true,
    disabled_reason   text,
    deleted_at        timestamptz,
    -- Bumped on every change; replicas use it to apply changes in order.
    revision          bigint NOT NULL DEFAULT 1,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name)
);
CREATE INDEX actions_tenant ON actions (tenant_id) WHERE deleted_at IS NULL;
CREATE INDEX actions_updated ON actions (updated_at);

CREATE TABLE events (
    tenant_id        uuid NOT NULL,
    id               text NOT NULL,
    idempotency_key  text,
    type             text NOT NULL,
    source           text,
    time             timestamptz,
    data             json NOT NULL,
    metadata         jsonb NOT NULL DEFAULT '{}',
    received_at      timestamptz NOT NULL,
    -- NULL until the matcher has recorded this event's executions: the events table is also
    -- the outbox, and the scheduler republishes events left unmatched for too long.
    matched_at       timestamptz,
    matched_count    integer,
    -- When the outbox sweep last re-sent this unmatched event.
    republished_at   timestamptz,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX events_idempotency ON events (tenant_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX events_unmatched ON events (received_at) WHERE matched_at IS NULL;
CREATE INDEX events_received ON events (tenant_id, received_at);

CREATE TABLE executions (
    id               uuid PRIMARY KEY,
    tenant_id        uuid NOT NULL,
    event_id         text NOT NULL,
    action_id        uuid NOT NULL,
    status           text NOT NULL CHECK (status IN
                       ('pending', 'processing', 'retry_scheduled', 'succeeded', 'failed', 'cancelled')),
    -- Attempts started so far; the next attempt is attempts + 1.
    attempts         integer NOT NULL DEFAULT 0,
    max_attempts     integer NOT NULL,
    priority         integer NOT NULL,
    next_attempt_at  timestamptz,
    -- While processing: when recovery may assume the executor died.
    lease_until      timestamptz,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    UNIQUE (tenant_id, event_id, action_id)
);
CREATE INDEX executions_tenant_status ON executions (tenant_id, status, created_at);
CREATE INDEX executions_action ON executions (action_id, created_at);
CREATE INDEX executions_processing ON executions (lease_until) WHERE status = 'processing';

CREATE TABLE attempts (
    id                uuid PRIMARY KEY,
    execution_id      uuid NOT NULL,
    tenant_id         uuid NOT NULL,
    attempt           integer NOT NULL,
    started_at        timestamptz NOT NULL,
    duration_ms       integer NOT NULL,
    request_url       text NOT NULL,
    response_status   integer,
    response_headers  jsonb,
    response_body     text,
    outcome           text NOT NULL,
    error_kind        text,
    error_message     text,
    UNIQUE (execution_id, attempt)
);

CREATE TABLE endpoint_circuits (
    tenant_id        uuid NOT NULL,
    endpoint         text NOT NULL,
    state            text NOT NULL CHECK (state IN ('closed', 'open', 'half_open')),
    opened_at        timestamptz,
    retry_at         timestamptz,
    trips            integer NOT NULL DEFAULT 0,
    consecutive_failures integer NOT NULL DEFAULT 0,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, endpoint)
);

CREATE TABLE delayed_jobs (
    id             text PRIMARY KEY,
    due_at         timestamptz NOT NULL,
    exchange       text NOT NULL,
    routing_key    text NOT NULL,
    message_type   text NOT NULL,
    body           bytea NOT NULL,
    headers        jsonb NOT NULL DEFAULT '{}',
    claimed_by     text,
    claimed_until  timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX delayed_jobs_due ON delayed_jobs (due_at);
