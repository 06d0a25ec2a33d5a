-- Issue 19: a tenant's secrets, referred to from templates as `{{ secrets.NAME }}`. The value is
-- sealed (AES-256-GCM under `security.encryption_key`, bound to its tenant and name; see
-- common/src/crypto.rs) and never shown again. Handlers and providers' secrets are sealed in
-- their own columns the same way, by `migrate` and `reencrypt` (which cannot be SQL: the key
-- is the services').
CREATE TABLE secrets (
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name        text NOT NULL CHECK (name ~ '^[a-z0-9_]{1,64}$'),
    value       text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, name)
);

-- Sealing a stored handler again (`reencrypt`) changes nothing a matcher reads: it is not
-- announced, so that re-sealing a million actions does not reload them all in every matcher.
CREATE OR REPLACE FUNCTION herald_action_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed actions;
BEGIN
    IF TG_OP = 'DELETE' THEN
        changed := OLD;
    ELSE
        changed := NEW;
    END IF;
    IF TG_OP = 'UPDATE'
       AND to_jsonb(OLD) - 'handler' = to_jsonb(NEW) - 'handler' THEN
        RETURN NULL;
    END IF;
    IF NOT changed.one_off THEN
        PERFORM pg_notify('herald_actions', changed.tenant_id::text || ':' || changed.id::text);
    END IF;
    RETURN NULL;
END;
$$;
