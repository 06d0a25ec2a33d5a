-- Issue 6: inbound provider webhooks. A tenant registers each provider that sends it webhooks;
-- `POST /v1/hooks/{id}` checks a delivery with the provider's scheme and secret and turns it
-- into an event.
CREATE TABLE providers (
    id               uuid PRIMARY KEY,
    tenant_id        uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name             text NOT NULL,
    scheme           text NOT NULL CHECK (scheme IN
                       ('standard_webhooks', 'stripe', 'github', 'hmac_sha256')),
    -- Kept as given: verifying a signature needs it (as actions keep their signing secrets).
    secret           text NOT NULL,
    -- NULL for the schemes that sign no timestamp; 0 turns the check off.
    tolerance_s      integer CHECK (tolerance_s BETWEEN 0 AND 86400),
    -- {"field": "<dotted path>"} or {"header": "<name>"}.
    event_type       jsonb NOT NULL,
    type_prefix      text,
    source           text,
    -- Only for hmac_sha256.
    signature_header text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name)
);
