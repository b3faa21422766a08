-- Who published, re-published or unpublished a site's public kitchen window, and who put a camera
-- on it or took one off (api/public_admin.py): a link on a restaurant's door is a public statement,
-- so the bureau can later say who made it and when. Written in the same transaction as the change.
-- No foreign keys: the trail outlives a camera or site deleted later. `enterprise_id` is the
-- site's owner at the time, so an enterprise reads only what happened while the site was its own.
-- Never updated, never deleted. Forward-only: a later change is a new file, never an edit.
CREATE TABLE public_window_audit (
    audit_id      bigserial PRIMARY KEY,
    at            timestamptz NOT NULL DEFAULT now(),
    site_id       text NOT NULL,
    enterprise_id text NOT NULL,
    actor         text NOT NULL,
    action        text NOT NULL CHECK (action IN
                      ('published', 'republished', 'unpublished', 'camera_added', 'camera_removed')),
    camera_id     text CHECK ((camera_id IS NULL) = (action IN ('published', 'republished', 'unpublished')))
);
CREATE INDEX public_window_audit_site ON public_window_audit (site_id, audit_id);

CREATE FUNCTION public_window_audit_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'public_window_audit is append-only';
END $$;
CREATE TRIGGER public_window_audit_append_only BEFORE UPDATE OR DELETE ON public_window_audit
    FOR EACH ROW EXECUTE FUNCTION public_window_audit_is_append_only();
