-- The rectification loop: staff and their A/B/C assignment per site, leniency and penalty flags on
-- alerts, rectification submissions, the notice inbox with per-channel delivery (MQTT, signed
-- webhook), and follow-up visits. Forward-only: a later change is a new file, never an edit.

-- The bureau's staff. `away` sends new alerts of the sites they lead (slot A) to slot B.
CREATE TABLE staff (
    staff_id   text PRIMARY KEY CHECK (staff_id ~ '^[A-Za-z0-9_-]{1,64}$'),
    name       text NOT NULL,
    away       boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- A = primary handler, B = backup, C = specialist (difficult and escalated alerts).
CREATE TABLE site_handlers (
    site_id  text NOT NULL REFERENCES sites,
    slot     text NOT NULL CHECK (slot IN ('A', 'B', 'C')),
    staff_id text NOT NULL REFERENCES staff,
    PRIMARY KEY (site_id, slot)
);

-- Where an enterprise's webhook notices go. The secret signs each body (HMAC-SHA256); it must be
-- readable to sign, so it is stored as is: protect the database accordingly.
ALTER TABLE enterprises
    ADD COLUMN webhook_url    text CHECK (webhook_url ~ '^https?://'),
    ADD COLUMN webhook_secret text CHECK (length(webhook_secret) >= 32),
    ADD CONSTRAINT enterprises_webhook_complete CHECK ((webhook_url IS NULL) = (webhook_secret IS NULL));

ALTER TABLE alerts
    ADD COLUMN assignee          text REFERENCES staff,
    ADD COLUMN assigned_slot     text CHECK (assigned_slot IN ('A', 'B', 'C')),
    ADD COLUMN difficult         boolean NOT NULL DEFAULT false,
    -- first_offence: on the no-penalty list and no earlier closed offence of this code by this
    -- enterprise within the look-back; repeat: there was one; not_eligible: not on the list.
    ADD COLUMN leniency          text NOT NULL DEFAULT 'not_eligible'
                                 CHECK (leniency IN ('first_offence', 'repeat', 'not_eligible')),
    ADD COLUMN prior_alert_id    text REFERENCES alerts,
    ADD COLUMN penalty_case      boolean NOT NULL DEFAULT false,
    -- How a closed alert ended: warning (first offence corrected in time), penalty (flagged for a
    -- penalty case), corrected (not on the list, corrected), false_alarm (dismissed).
    ADD COLUMN disposition       text CHECK (disposition IN ('warning', 'penalty', 'corrected', 'false_alarm')),
    ADD COLUMN notified_at       timestamptz,
    ADD COLUMN acknowledged_at   timestamptz,
    ADD COLUMN rectified_at      timestamptz,   -- latest rectification submitted
    ADD COLUMN escalated_at      timestamptz,
    ADD COLUMN escalation_reason text,
    ADD COLUMN closed_at         timestamptz,   -- verified and closed, or dismissed
    ADD COLUMN close_reason      text;

-- The timer's scan: alerts waiting on the enterprise whose deadline has passed.
CREATE INDEX alerts_due ON alerts (deadline)
    WHERE status IN ('open', 'notified', 'acknowledged', 'rejected');
-- Leniency look-back: earlier closed offences of one enterprise and code.
CREATE INDEX alerts_offence_history ON alerts (enterprise_id, code, first_seen) WHERE status = 'closed';
CREATE INDEX alerts_assignee ON alerts (assignee) WHERE status NOT IN ('closed', 'dismissed');

-- What the enterprise submitted as proof, and the operator's decision on it.
CREATE TABLE rectifications (
    rectification_id bigserial PRIMARY KEY,
    alert_id         text NOT NULL REFERENCES alerts,
    submitted_at     timestamptz NOT NULL DEFAULT now(),
    submitted_by     text NOT NULL,
    description      text NOT NULL CHECK (length(description) BETWEEN 1 AND 4000),
    photos           jsonb NOT NULL DEFAULT '[]'::jsonb,   -- SHA-256 of each photo in the evidence store
    decision         text CHECK (decision IN ('accepted', 'rejected')),
    decided_at       timestamptz,
    decided_by       text,
    decision_reason  text
);
CREATE INDEX rectifications_alert ON rectifications (alert_id, rectification_id);

-- The enterprise's inbox: every notice ever sent to it, and when it was read.
CREATE TABLE notices (
    notice_id     text PRIMARY KEY,
    alert_id      text NOT NULL REFERENCES alerts,
    enterprise_id text NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('opened', 'rejected', 'escalated', 'closed', 'dismissed')),
    payload       jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    read_at       timestamptz
);
CREATE INDEX notices_enterprise ON notices (enterprise_id, created_at DESC);

-- Each notice is pushed once per channel the enterprise has; a webhook that keeps failing goes
-- dead (dead_at) after the configured number of attempts instead of retrying forever.
ALTER TABLE outbox DROP CONSTRAINT outbox_channel_check;
ALTER TABLE outbox
    ADD CONSTRAINT outbox_channel_check CHECK (channel IN ('mqtt_notice', 'webhook', 'alert_stream')),
    ADD COLUMN notice_id text REFERENCES notices,
    ADD COLUMN dead_at   timestamptz;
DROP INDEX outbox_pending;
CREATE INDEX outbox_pending ON outbox (outbox_id) WHERE delivered_at IS NULL AND dead_at IS NULL;
CREATE INDEX outbox_notice ON outbox (notice_id);

-- After a penalty case closes, an inspector goes back to check; tracked to an outcome.
CREATE TABLE follow_up_visits (
    visit_id     bigserial PRIMARY KEY,
    alert_id     text NOT NULL REFERENCES alerts,
    site_id      text NOT NULL,
    staff_id     text REFERENCES staff,
    due_at       timestamptz NOT NULL,
    status       text NOT NULL DEFAULT 'scheduled' CHECK (status IN ('scheduled', 'completed', 'missed')),
    outcome      text CHECK (outcome IN ('compliant', 'non_compliant')),
    notes        text,
    completed_at timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX follow_up_visits_due ON follow_up_visits (due_at) WHERE status = 'scheduled';
CREATE UNIQUE INDEX follow_up_visits_one_per_alert ON follow_up_visits (alert_id);
