-- Personal accounts (issue 19.4): bureau staff and enterprise users sign in with a username and
-- password instead of pasting an API key, so the audit names the person. API keys stay for
-- machines and integrations. Forward-only: a later change is a new file, never an edit.

CREATE TABLE accounts (
    -- Stored lower-case: "ZhangWei" and "zhangwei" are one account, never two look-alikes.
    username       text PRIMARY KEY CHECK (username ~ '^[a-z0-9][a-z0-9._-]{2,63}$'),
    display_name   text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 200),
    role           text NOT NULL CHECK (role IN ('operator', 'supervisor', 'enterprise')),
    -- A bureau account is one staff member (their name is the audit's); one account per person.
    staff_id       text UNIQUE REFERENCES staff,
    enterprise_id  text REFERENCES enterprises,
    -- argon2id in PHC form: never the password, never a fast hash.
    password_hash  text NOT NULL CHECK (password_hash LIKE '$argon2id$%'),
    -- Set when a supervisor (or the CLI) chose the password: the person is asked to change it.
    must_change    boolean NOT NULL DEFAULT true,
    -- Lock-out per account (vigil/accounts.py): consecutive failures, and until when it is locked.
    failed_count   integer NOT NULL DEFAULT 0 CHECK (failed_count >= 0),
    locked_until   timestamptz,
    disabled_at    timestamptz,
    created_by     text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    password_changed_at timestamptz NOT NULL DEFAULT now(),
    last_login_at  timestamptz,
    CONSTRAINT accounts_tenant CHECK (
        CASE WHEN role = 'enterprise' THEN enterprise_id IS NOT NULL AND staff_id IS NULL
             ELSE enterprise_id IS NULL AND staff_id IS NOT NULL END
    )
);
CREATE INDEX accounts_enterprise ON accounts (enterprise_id) WHERE enterprise_id IS NOT NULL;

-- Browser sessions of an account: the same `vt_…` token format as a key's (api_tokens), kept
-- apart because api_tokens.key_id is NOT NULL and revoking a key must not touch accounts.
CREATE TABLE account_sessions (
    token_sha256 bytea PRIMARY KEY CHECK (length(token_sha256) = 32),
    username     text NOT NULL REFERENCES accounts ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);
CREATE INDEX account_sessions_user ON account_sessions (username);
CREATE INDEX account_sessions_expiry ON account_sessions (expires_at);
