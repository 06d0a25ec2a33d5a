-- Issue 20: workflow runs. A run is an execution whose action's handler is a workflow; each of
-- its steps has a row here, written as it moves, and every attempt of a step a row in
-- step_attempts. What starts next is decided from these rows, in the transaction that records
-- a step's end (common/src/workflow.rs), with the run's execution row locked.
CREATE TABLE workflow_steps (
    execution_id     uuid NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    step             text NOT NULL,
    tenant_id        uuid NOT NULL,
    status           text NOT NULL CHECK (status IN
                       ('waiting', 'queued', 'retry_scheduled', 'succeeded', 'failed', 'skipped', 'cancelled')),
    -- Attempts recorded so far; the next attempt is attempts + 1.
    attempts         integer NOT NULL DEFAULT 0,
    -- What later steps read as steps.<id>.output (bounded when written).
    output           jsonb,
    last_error       text,
    next_attempt_at  timestamptz,
    queued_at        timestamptz,
    finished_at      timestamptz,
    PRIMARY KEY (execution_id, step)
);

CREATE TABLE step_attempts (
    execution_id      uuid NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
    step              text NOT NULL,
    tenant_id         uuid NOT NULL,
    attempt           integer NOT NULL,
    started_at        timestamptz NOT NULL,
    duration_ms       integer NOT NULL,
    target            text NOT NULL,
    response_status   integer,
    outcome           text NOT NULL,
    error_kind        text,
    error_message     text,
    PRIMARY KEY (execution_id, step, attempt)
);
