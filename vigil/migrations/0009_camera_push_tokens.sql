-- Push credentials for edge boxes (camera ingest's `POST /v1/cameras/{id}/frames`): one per edge
-- box, bound to named cameras of one enterprise, replacing the one token every tenant shared.
-- Only the SHA-256 of the whole token is kept, as for API keys; a token is shown once when issued
-- or rotated. Revoked rows stay (revoked_at set), so the record says when a credential stopped.
-- Forward-only: a later change is a new file, never an edit of this one.

CREATE TABLE camera_push_tokens (
    token_id      text PRIMARY KEY CHECK (token_id ~ '^[0-9a-f]{12}$'),   -- public, in the token
    enterprise_id text NOT NULL REFERENCES enterprises ON DELETE CASCADE,
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),   -- the edge box
    -- The cameras this box may push for, all of the enterprise above (checked when issued).
    cameras       text[] NOT NULL CHECK (cardinality(cameras) BETWEEN 1 AND 256),
    token_sha256  bytea NOT NULL UNIQUE CHECK (length(token_sha256) = 32),
    created_by    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    rotated_at    timestamptz,
    revoked_at    timestamptz
);
CREATE INDEX camera_push_tokens_enterprise ON camera_push_tokens (enterprise_id);
