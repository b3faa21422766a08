"""Ingest: the edge of Vigil, where device and camera traffic enters, and where readings are kept.

`payloads` validates MQTT topics and payloads (pure functions, no I/O); `bridge` is the service
that moves device messages from MQTT to Kafka at least once, dead-lettering whatever it refuses;
`camera/` pulls (or receives) camera frames, gates them on motion and watches for tampering;
`storage` is the telemetry store (Kafka → the `telemetry` table by binary COPY), `partitions` its
daily partitions and `retention` the pass that drops what has outlived its retention.
"""
