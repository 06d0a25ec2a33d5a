-- Issue 5: the scheduler's recovery loops, operator retries in bulk, and retention.

-- A release now deletes its jobs in a transaction held until the broker confirms them (the
-- row locks are the claim), so the claim columns go. Ids compare bytewise so that every job
-- of one execution (`<execution id>:...`) is one index range: cancel removes them, and
-- recovery skips executions whose next job is still waiting here.
ALTER TABLE delayed_jobs DROP COLUMN claimed_by, DROP COLUMN claimed_until;
ALTER TABLE delayed_jobs ALTER COLUMN id TYPE text COLLATE "C";

-- Recovery: retries long past their time with no job waiting. (Pending executions are found
-- per tenant through `executions_tenant_status`: indexing them by time would cost every new
-- execution one more index entry.)
CREATE INDEX executions_retry_due ON executions (next_attempt_at)
    WHERE status = 'retry_scheduled';

-- Retention deletes old rows oldest first. BRIN indexes cost next to nothing on insert and
-- suit these append-ordered times; `autosummarize` keeps every filled range summarized, so a
-- retention round reads only the old ranges (and the one being filled), not the whole table.
CREATE INDEX events_received_brin ON events USING brin (received_at)
    WITH (autosummarize = on);
CREATE INDEX executions_created_brin ON executions USING brin (created_at)
    WITH (autosummarize = on);
CREATE INDEX attempts_started_brin ON attempts USING brin (started_at)
    WITH (autosummarize = on);

-- A retry of every execution matching a filter, carried out page by page by the scheduler
-- (resumable: `after_*` is the last execution re-sent).
CREATE TABLE bulk_retries (
    id               uuid PRIMARY KEY,
    tenant_id        uuid NOT NULL,
    execution_status text NOT NULL,
    action_id        uuid,
    event_id         text,
    since            timestamptz,
    until            timestamptz,
    status           text NOT NULL CHECK (status IN ('running', 'done', 'cancelled')),
    retried          bigint NOT NULL DEFAULT 0,
    after_created_at timestamptz,
    after_id         uuid,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz
);
CREATE INDEX bulk_retries_running ON bulk_retries (created_at) WHERE status = 'running';
CREATE INDEX bulk_retries_tenant ON bulk_retries (tenant_id, created_at);

-- One-off deliveries (`POST /v1/deliveries`) run through an action of their own that matches
-- no event: it carries the destination, secret and retry policy for the executor. Matchers are
-- not told about them. Retention deletes one with its execution.
ALTER TABLE actions ADD COLUMN one_off boolean NOT NULL DEFAULT false;

CREATE OR REPLACE FUNCTION herald_action_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed actions;
BEGIN
    IF TG_OP = 'DELETE' THEN
        changed := OLD;
    ELSE
        changed := NEW;
    END IF;
    IF NOT changed.one_off THEN
        PERFORM pg_notify('herald_actions', changed.tenant_id::text || ':' || changed.id::text);
    END IF;
    RETURN NULL;
END;
$$;
