-- Circuit breakers shared by every executor (see common/src/circuit.rs): each row carries the
-- failure window and the probe claims, and an id by which the API names it.
ALTER TABLE endpoint_circuits
    ADD COLUMN id                uuid NOT NULL DEFAULT gen_random_uuid(),
    ADD COLUMN window_start      timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN window_attempts   integer NOT NULL DEFAULT 0,
    ADD COLUMN window_failures   integer NOT NULL DEFAULT 0,
    ADD COLUMN probes_in_flight  integer NOT NULL DEFAULT 0,
    ADD COLUMN probe_lease_until timestamptz,
    ADD COLUMN last_error        text;
CREATE UNIQUE INDEX endpoint_circuits_id ON endpoint_circuits (id);
-- Executors reload the circuits changed since their last look.
CREATE INDEX endpoint_circuits_updated ON endpoint_circuits (updated_at);

-- Per-action limits shared by every executor: a token bucket for `rate_limit_per_s`, and one
-- leased slot per attempt in flight for `max_concurrency` (a lease outlives a dead executor by
-- at most its length).
CREATE TABLE action_rate_buckets (
    tenant_id   uuid NOT NULL,
    action_id   uuid NOT NULL,
    tokens      double precision NOT NULL,
    refilled_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, action_id)
);

CREATE TABLE action_slots (
    tenant_id    uuid NOT NULL,
    action_id    uuid NOT NULL,
    execution_id uuid NOT NULL,
    lease_until  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, action_id, execution_id)
);
