-- The public kitchen window (互联网+明厨亮灶; api/public.py, api/public_admin.py): per site, a public
-- link whose token is kept only as its SHA-256 (the link, printed on the door, carries the token),
-- and the cameras of the site shown there. Deleting the row ends the link at once; a camera's row
-- gone, that camera is no longer shown. Forward-only: a later change is a new file, never an edit.
CREATE TABLE public_windows (
    site_id      text PRIMARY KEY REFERENCES sites ON DELETE CASCADE,
    token_sha256 text NOT NULL UNIQUE CHECK (token_sha256 ~ '^[0-9a-f]{64}$'),
    issued_at    timestamptz NOT NULL DEFAULT now(),
    issued_by    text NOT NULL
);

CREATE TABLE public_cameras (
    camera_id    text PRIMARY KEY REFERENCES cameras ON DELETE CASCADE,
    site_id      text NOT NULL REFERENCES sites ON DELETE CASCADE,
    published_at timestamptz NOT NULL DEFAULT now(),
    published_by text NOT NULL
);
CREATE INDEX public_cameras_site ON public_cameras (site_id);
