-- Where each site is, for the dashboard's site map (issue 19.1): WGS-84 degrees, both or neither.
-- Forward-only: a later change is a new file, never an edit.

-- Nullable: sites registered before this (and sites created implicitly by `vigil devices
-- register`) have no position until someone gives one; the map lists them as unplaced.
ALTER TABLE sites
    ADD COLUMN latitude  double precision CHECK (latitude BETWEEN -90 AND 90),
    ADD COLUMN longitude double precision CHECK (longitude BETWEEN -180 AND 180),
    ADD CONSTRAINT sites_location_pair CHECK ((latitude IS NULL) = (longitude IS NULL));
