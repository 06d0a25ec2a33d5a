-- The outbox: one small row per event accepted over HTTP whose executions no matcher has
-- recorded yet, deleted when one does. It used to be the events table's own rows with
-- `matched_at IS NULL`, found through a partial index on that column; that index made the
-- matcher's update of every event a non-HOT one, which rewrote the row's entry in every index
-- of the table (under load, the database's largest single cost).
CREATE TABLE event_outbox (
    tenant_id      uuid NOT NULL,
    id             text NOT NULL,
    received_at    timestamptz NOT NULL,
    republished_at timestamptz,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX event_outbox_received ON event_outbox (received_at);

INSERT INTO event_outbox (tenant_id, id, received_at, republished_at)
    SELECT tenant_id, id, received_at, republished_at FROM events WHERE matched_at IS NULL;

DROP INDEX events_unmatched;
-- Room in each page for the matcher's update to stay on the page (a HOT update).
ALTER TABLE events SET (fillfactor = 80);
