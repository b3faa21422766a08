-- Opening hours of each site, for findings that depend on whether it is open (issue 23.3: a person
-- in the kitchen after hours). Forward-only: a later change is a new file, never an edit.
--
-- Local times of day in the bureau's zone (Settings.timezone): the sites a bureau supervises share
-- its clock, and a time column cannot carry a zone. closes_at before opens_at means the site is
-- open over midnight (10:00 to 02:00). Both or neither: a site without hours is never "closed",
-- since nobody said when it is. Equal times are refused: they would mean either never or always.

ALTER TABLE sites
    ADD COLUMN opens_at  time,
    ADD COLUMN closes_at time,
    ADD CONSTRAINT sites_hours_pair CHECK ((opens_at IS NULL) = (closes_at IS NULL)),
    ADD CONSTRAINT sites_hours_span CHECK (opens_at <> closes_at);

-- The vision detector caches the hours like the cameras: tell it when they change (0008).
CREATE TRIGGER sites_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON sites
    FOR EACH STATEMENT EXECUTE FUNCTION vigil_registry_changed();
