-- Indexes the registry queries need.
-- Forward-only: a later change is a new file, never an edit of this one.
--
-- Devices and cameras are looked up per site (a site's status, deleting a site only when
-- nothing refers to it) and sites per enterprise (counts, deleting an enterprise). Without these
-- each is a sequential scan of the table, and the FOREIGN KEY checks on deleting a site or an
-- enterprise scan too. devices (enterprise_id) and cameras (enterprise_id) exist since 0001/0002.
-- Plain CREATE INDEX (not CONCURRENTLY: a migration is one transaction); the registry tables are
-- thousands of rows, so the brief write lock is harmless.
CREATE INDEX IF NOT EXISTS devices_site ON devices (site_id);
CREATE INDEX IF NOT EXISTS cameras_site ON cameras (site_id);
CREATE INDEX IF NOT EXISTS sites_enterprise ON sites (enterprise_id);

