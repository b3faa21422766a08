"""Kafka topic names (versioned) and MQTT topic patterns: the contracts outsiders depend on.

Kafka keys are the device or camera id, so order per source holds within a partition.
"""

from __future__ import annotations

from dataclasses import dataclass

TELEMETRY = "vigil.telemetry.v1"
FRAMES = "vigil.frames.v1"
VIOLATIONS = "vigil.violations.v1"
ALERTS = "vigil.alerts.v1"
DEADLETTER = "vigil.deadletter.v1"
# Event clips: the vision detector asks for a clip around a finding (CLIP_REQUESTS); the camera
# ingest that holds the camera's recent frames encodes it and says so (CLIPS), for the alerts
# service to put on the alert.
CLIP_REQUESTS = "vigil.clip-requests.v1"
CLIPS = "vigil.clips.v1"
# Live view: the API asks for a camera's frames while someone watches (a lease renewed every few
# seconds, LIVE_WATCH); the camera ingest that pulls the camera publishes every sampled frame on
# LIVE_FRAMES (the JPEG, keyed by camera id, headers `camera_id` and `ts`) while a lease holds.
LIVE_WATCH = "vigil.live-watch.v1"
LIVE_FRAMES = "vigil.live.v1"


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int


# Partition counts bound how many members of one consumer group can share the work: twelve lets
# a telemetry or vision detector scale to twelve workers; the downstream topics carry far less.
TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(TELEMETRY, 12),
    TopicSpec(FRAMES, 12),
    TopicSpec(VIOLATIONS, 6),
    TopicSpec(ALERTS, 3),
    TopicSpec(DEADLETTER, 3),
    # One clip per camera finding: a handful an hour, read by every camera ingest.
    TopicSpec(CLIP_REQUESTS, 3),
    TopicSpec(CLIPS, 3),
    # Leases: a message per watcher every few seconds. Live frames: a viewer reads only its
    # camera's partition, so more partitions spread the cameras being watched.
    TopicSpec(LIVE_WATCH, 3),
    TopicSpec(LIVE_FRAMES, 6),
)

# MQTT: devices publish under vigil/v1/{enterprise_id}/{device_id}/{kind}; enterprises receive
# their notices on vigil/v1/{enterprise_id}/notices.
MQTT_PREFIX = "vigil/v1"
MQTT_DEVICE_SUBSCRIPTION = f"{MQTT_PREFIX}/+/+/+"
DEVICE_MESSAGE_KINDS = ("telemetry", "event", "status")


def notices_topic(enterprise_id: str) -> str:
    return f"{MQTT_PREFIX}/{enterprise_id}/notices"
