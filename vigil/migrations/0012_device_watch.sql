-- Two small indexes for the telemetry detector's watch over device alerts and registrations.
-- Forward-only: a later change is a new file, never an edit.

-- Device alerts closed or dismissed while the device still reported the condition (no clear yet):
-- the telemetry detector looks for them every few seconds to raise the condition again as a new
-- alert (issue 16.5). A row leaves this index as soon as the clear arrives, so it stays tiny.
CREATE INDEX alerts_closed_uncleared ON alerts (closed_at)
    WHERE source_kind = 'device' AND cleared_at IS NULL AND status IN ('closed', 'dismissed');

-- Devices registered recently: the telemetry detector looks for those that have never sent a
-- message once their heartbeat window has passed (issue 16.4, DEVICE_OFFLINE "never connected").
CREATE INDEX devices_created ON devices (created_at);
