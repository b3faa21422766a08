-- Sensor readings, one row per (device, time, metric), written by the telemetry store
-- (`vigil run telemetry-store`) and read by the sensor trace of an alert.
-- Forward-only: a later change is a new file, never an edit of this one.
--
-- With TimescaleDB (installed and preloaded): a hypertable in one-day chunks, compressed after a
-- week. Without it: native range partitioning on `ts`; the store creates the daily partitions
-- (telemetry_pYYYYMMDD) ahead of time and on demand. There is deliberately no DEFAULT partition:
-- a row with no partition is refused loudly rather than parked where a later partition for its
-- day could no longer be attached. Queries use plain SQL and date_bin(), which work on both.
--
-- The primary key is the idempotency record: a redelivered reading conflicts and is skipped. Its
-- order (device, time, metric) is the trace query's: one device over a time range.

DO $$
DECLARE
    timescale boolean := EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')
        OR (EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')
            AND current_setting('shared_preload_libraries', true) LIKE '%timescaledb%');
BEGIN
    IF timescale THEN
        CREATE EXTENSION IF NOT EXISTS timescaledb;
    END IF;
    EXECUTE format(
        'CREATE TABLE telemetry ('
        '    device_id     text NOT NULL,'
        '    enterprise_id text NOT NULL,'
        '    ts            timestamptz NOT NULL,'
        '    metric        text NOT NULL,'
        '    value         double precision NOT NULL,'
        '    PRIMARY KEY (device_id, ts, metric)'
        ') %s',
        CASE WHEN timescale THEN '' ELSE 'PARTITION BY RANGE (ts)' END
    );
    IF timescale THEN
        EXECUTE $sql$SELECT create_hypertable('telemetry', 'ts', chunk_time_interval => INTERVAL '1 day')$sql$;
        EXECUTE 'ALTER TABLE telemetry SET (timescaledb.compress,'
                ' timescaledb.compress_segmentby = ''device_id'','
                ' timescaledb.compress_orderby = ''ts, metric'')';
        EXECUTE $sql$SELECT add_compression_policy('telemetry', INTERVAL '7 days')$sql$;
    END IF;
END $$;

COMMENT ON TABLE telemetry IS
    'Sensor readings from vigil.telemetry.v1 (one row per device, time and metric); written by the telemetry store';
