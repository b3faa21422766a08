"""Ingest: the edge of Vigil, where device traffic enters.

`payloads` validates MQTT topics and payloads (pure functions, no I/O); `bridge` is the service
that moves device messages from MQTT to Kafka at least once, dead-lettering whatever it refuses.
"""
