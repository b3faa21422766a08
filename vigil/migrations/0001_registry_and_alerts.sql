-- Registry (enterprises, sites, devices), alerts with their audit trail, and the notice outbox.
-- Forward-only: a later change is a new file, never an edit of this one.

CREATE TABLE enterprises (
    enterprise_id text PRIMARY KEY CHECK (enterprise_id ~ '^[A-Za-z0-9_-]{1,64}$'),
    name          text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE sites (
    site_id       text PRIMARY KEY CHECK (site_id ~ '^[A-Za-z0-9_-]{1,64}$'),
    enterprise_id text NOT NULL REFERENCES enterprises,
    name          text NOT NULL,
    district      text,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE devices (
    device_id     text PRIMARY KEY CHECK (device_id ~ '^[A-Za-z0-9_-]{1,64}$'),
    enterprise_id text NOT NULL REFERENCES enterprises,
    site_id       text NOT NULL REFERENCES sites,
    profile       text NOT NULL,
    attributes    jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX devices_enterprise ON devices (enterprise_id);

CREATE TABLE alerts (
    alert_id      text PRIMARY KEY,            -- the deterministic id of the opening violation
    code          text NOT NULL,
    enterprise_id text NOT NULL,
    site_id       text NOT NULL,
    source_kind   text NOT NULL CHECK (source_kind IN ('device', 'camera')),
    source_id     text NOT NULL,
    status        text NOT NULL CHECK (status IN (
                      'open', 'notified', 'acknowledged', 'rectification_submitted',
                      'rejected', 'escalated', 'closed', 'dismissed')),
    severity      text NOT NULL,
    tier          smallint NOT NULL CHECK (tier IN (1, 2, 3)),
    summary       text NOT NULL,
    evidence      jsonb NOT NULL DEFAULT '{}'::jsonb,
    detector      text NOT NULL,
    window_start  timestamptz NOT NULL,
    first_seen    timestamptz NOT NULL,
    last_seen     timestamptz NOT NULL,
    cleared_at    timestamptz,                  -- when the condition itself ended
    occurrences   integer NOT NULL DEFAULT 1,
    deadline      timestamptz NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alerts_created ON alerts (created_at DESC, alert_id DESC);
CREATE INDEX alerts_enterprise_created ON alerts (enterprise_id, created_at DESC);
CREATE INDEX alerts_status ON alerts (status) WHERE status NOT IN ('closed', 'dismissed');
-- One open alert per source and code: a repeat updates it; a new one opens only after it closes.
CREATE UNIQUE INDEX alerts_one_open ON alerts (source_kind, source_id, code)
    WHERE status NOT IN ('closed', 'dismissed');

-- Every violation id ever applied, and the alert it went to: the idempotency record that makes
-- a replayed violation a no-op (at-least-once delivery, exactly-once effect).
CREATE TABLE alert_violations (
    violation_id text NOT NULL,
    state        text NOT NULL CHECK (state IN ('active', 'cleared')),
    alert_id     text NOT NULL REFERENCES alerts,
    detected_at  timestamptz NOT NULL,
    applied_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (violation_id, state)
);
CREATE INDEX alert_violations_alert ON alert_violations (alert_id);

-- Every change to an alert: who, when, from what, to what, why. Never updated, never deleted.
CREATE TABLE alert_audit (
    audit_id    bigserial PRIMARY KEY,
    alert_id    text NOT NULL REFERENCES alerts,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL,
    action      text NOT NULL,
    from_status text,
    to_status   text,
    reason      text
);
CREATE INDEX alert_audit_alert ON alert_audit (alert_id, audit_id);

CREATE FUNCTION alert_audit_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'alert_audit is append-only';
END $$;
CREATE TRIGGER alert_audit_append_only BEFORE UPDATE OR DELETE ON alert_audit
    FOR EACH ROW EXECUTE FUNCTION alert_audit_is_append_only();

-- Written in the same transaction as the alert change, delivered afterwards by the notifier:
-- a crash between "alert stored" and "notice sent" loses nothing.
CREATE TABLE outbox (
    outbox_id     bigserial PRIMARY KEY,
    alert_id      text NOT NULL REFERENCES alerts,
    enterprise_id text NOT NULL,
    channel       text NOT NULL CHECK (channel IN ('mqtt_notice', 'alert_stream')),
    payload       jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    attempts      integer NOT NULL DEFAULT 0,
    last_error    text,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),  -- backoff after a failed delivery
    delivered_at  timestamptz
);
CREATE INDEX outbox_pending ON outbox (outbox_id) WHERE delivered_at IS NULL;
