-- Issue 20: sequential priorities, and step attempts by handler type. An action with after_lower_priorities starts, for an event,
-- only once every execution of that event with a lower priority number has ended; with
-- requires_success too, it is cancelled (the reason recorded) if any of them did not succeed.
ALTER TABLE actions
    ADD COLUMN after_lower_priorities boolean NOT NULL DEFAULT false,
    ADD COLUMN requires_success boolean NOT NULL DEFAULT false;

-- A step's attempts counted by the step's handler type (GET /v1/stats).
ALTER TABLE step_attempts ADD COLUMN handler_type text NOT NULL DEFAULT '';
