-- An operator acknowledging an alert on the wall: "seen, I have it". It is not the enterprise's
-- acknowledgement (a lifecycle state); it only records who took it and when, so the wall can stop
-- flashing it. Forward-only: a later change is a new file, never an edit of this one.
ALTER TABLE alerts
    ADD COLUMN operator_ack_at timestamptz,
    ADD COLUMN operator_ack_by text;
