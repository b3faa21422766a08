-- Cameras and the evidence kept with each finding.
-- Forward-only: a later change is a new file, never an edit of this one.

CREATE TABLE cameras (
    camera_id     text PRIMARY KEY CHECK (camera_id ~ '^[A-Za-z0-9_-]{1,64}$'),
    enterprise_id text NOT NULL REFERENCES enterprises,
    site_id       text NOT NULL REFERENCES sites,
    -- rtsp(s)://, http(s):// (MJPEG), file:// or a path (a video file, looped), or 'push' for an
    -- edge box that posts JPEG frames itself. Checked by vigil.cameras before it gets here.
    source        text NOT NULL,
    sample_fps    real NOT NULL DEFAULT 2 CHECK (sample_fps > 0 AND sample_fps <= 30),
    -- Polygons in normalised image coordinates, each with the codes it applies to:
    -- [{"name": "prep", "points": [[x, y], ...], "codes": ["KITCHEN_NO_MASK"]}]. Empty = the whole frame.
    zones         jsonb NOT NULL DEFAULT '[]'::jsonb,
    enabled       boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX cameras_enterprise ON cameras (enterprise_id);

-- Each applied violation keeps its own evidence (snapshot hash, boxes, readings), so an alert
-- that repeats has the list of every occurrence's proof, not only the latest.
ALTER TABLE alert_violations ADD COLUMN evidence jsonb NOT NULL DEFAULT '{}'::jsonb;
