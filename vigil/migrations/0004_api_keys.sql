-- API keys (stored hashed, shown once, revocable) and the short-lived tokens a browser exchanges
-- a key for. Forward-only: a later change is a new file, never an edit of this one.

CREATE TABLE api_keys (
    key_id        text PRIMARY KEY CHECK (key_id ~ '^[0-9a-f]{12}$'),  -- the public part of the key
    secret_sha256 bytea NOT NULL CHECK (length(secret_sha256) = 32),    -- SHA-256 of the whole key
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    role          text NOT NULL CHECK (role IN ('operator', 'supervisor', 'enterprise')),
    enterprise_id text REFERENCES enterprises,
    created_by    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz,
    -- An enterprise key belongs to exactly one enterprise; bureau keys to none.
    CONSTRAINT api_keys_tenant CHECK ((role = 'enterprise') = (enterprise_id IS NOT NULL))
);

CREATE TABLE api_tokens (
    token_sha256 bytea PRIMARY KEY CHECK (length(token_sha256) = 32),
    key_id       text NOT NULL REFERENCES api_keys,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);
CREATE INDEX api_tokens_expiry ON api_tokens (expires_at);
