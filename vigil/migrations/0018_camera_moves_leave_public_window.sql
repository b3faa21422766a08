-- A camera moved to another site leaves the old site's public kitchen window, and the old site's
-- audit says so (api/public_admin.py writes every other change). Done here, not in the API, so
-- every path that moves a camera (the API, `vigil cameras register`, a hand edit) leaves the same
-- trail; the actor is the system, since a trigger does not know who moved it (the cameras' own
-- change log does). The old site's owner at the time reads the row, as for every audit row.
-- Forward-only: a later change is a new file, never an edit.
CREATE FUNCTION camera_moved_leaves_public_window() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM public_cameras WHERE camera_id = NEW.camera_id AND site_id = OLD.site_id;
    IF FOUND THEN
        INSERT INTO public_window_audit (site_id, enterprise_id, actor, action, camera_id)
        SELECT OLD.site_id, s.enterprise_id, 'system:camera-moved', 'camera_removed', NEW.camera_id
        FROM sites s WHERE s.site_id = OLD.site_id;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER camera_moved_leaves_public_window AFTER UPDATE OF site_id ON cameras
    FOR EACH ROW WHEN (OLD.site_id IS DISTINCT FROM NEW.site_id)
    EXECUTE FUNCTION camera_moved_leaves_public_window();

-- Cameras moved between migrations 0016 and this one are still listed on their old site's window
-- (where the public page no longer shows them): take them off now, with the same trail.
WITH moved AS (
    DELETE FROM public_cameras p USING cameras c
    WHERE c.camera_id = p.camera_id AND c.site_id <> p.site_id
    RETURNING p.camera_id, p.site_id
)
INSERT INTO public_window_audit (site_id, enterprise_id, actor, action, camera_id)
SELECT m.site_id, s.enterprise_id, 'system:camera-moved', 'camera_removed', m.camera_id
FROM moved m JOIN sites s ON s.site_id = m.site_id;
