-- Per-device access tokens for ThingsBoard devices (the SDK sends the token as its MQTT username).
-- Only the SHA-256 of a token is kept, as for API keys; a token is shown once when issued.
-- Revoked rows stay (revoked_at set) so that the record says when a credential stopped working.
-- Forward-only: a later change is a new file, never an edit of this one.

CREATE TABLE device_tokens (
    token_id     text PRIMARY KEY CHECK (token_id ~ '^[0-9a-f]{12}$'),   -- public, names the token
    device_id    text NOT NULL REFERENCES devices ON DELETE CASCADE,
    token_sha256 bytea NOT NULL UNIQUE CHECK (length(token_sha256) = 32),
    created_by   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);
-- A device has at most one live token: issuing a new one revokes the old (rotation).
CREATE UNIQUE INDEX device_tokens_live ON device_tokens (device_id) WHERE revoked_at IS NULL;
