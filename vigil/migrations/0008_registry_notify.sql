-- Registry changes announced to the services that cache the registry.
-- Forward-only: a later change is a new file, never an edit of this one.
--
-- Ingest, the detectors and camera ingest keep the devices and cameras tables in memory. Without
-- a signal they learn of a new device at the next periodic reload or on a rate-limited miss, and
-- a device that publishes within that window is refused as unknown (the fault suite caught
-- readings dead-lettered this way). Each statement that changes a table now sends one NOTIFY on
-- channel `vigil_registry` with the table's name; the caches LISTEN and reload at once.
-- Statement-level, so a bulk import is one reload, not one per row. NOTIFY is delivered on
-- commit, so a reload always sees the change.

CREATE OR REPLACE FUNCTION vigil_registry_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('vigil_registry', TG_TABLE_NAME);
    RETURN NULL;
END
$$;

CREATE TRIGGER devices_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON devices
    FOR EACH STATEMENT EXECUTE FUNCTION vigil_registry_changed();

CREATE TRIGGER cameras_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON cameras
    FOR EACH STATEMENT EXECUTE FUNCTION vigil_registry_changed();
