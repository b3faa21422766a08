-- The device profiles registration checks against: each profile's name and the kind of each
-- attribute its rules read ('number', 'timezone', 'time_of_day'). The profiles themselves are the
-- telemetry detector's TOML files; this is what the shell and the detector publish of them, so
-- the API (which may not import a service) refuses an unknown profile or a mistyped attribute.
-- Forward-only: a later change is a new file, never an edit of this one.

CREATE TABLE device_profiles (
    profile         text PRIMARY KEY CHECK (profile ~ '^[A-Za-z0-9_.-]{1,64}$'),
    attribute_kinds jsonb NOT NULL DEFAULT '{}'::jsonb,
    published_at    timestamptz NOT NULL DEFAULT now()
);
