-- Every change to an action is announced on the `herald_actions` channel as
-- '<tenant id>:<action id>', so that every matcher and ingest replica applies it at once.
-- Announced from a trigger, so no writer can forget; delivered only when the change commits.
CREATE FUNCTION herald_action_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed actions;
BEGIN
    IF TG_OP = 'DELETE' THEN
        changed := OLD;
    ELSE
        changed := NEW;
    END IF;
    PERFORM pg_notify('herald_actions', changed.tenant_id::text || ':' || changed.id::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER actions_changed
    AFTER INSERT OR UPDATE OR DELETE ON actions
    FOR EACH ROW EXECUTE FUNCTION herald_action_changed();
