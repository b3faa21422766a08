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
)

# MQTT: devices publish under vigil/v1/{enterprise_id}/{device_id}/{kind}; enterprises receive
# their notices on vigil/v1/{enterprise_id}/notices.
MQTT_PREFIX = "vigil/v1"
MQTT_DEVICE_SUBSCRIPTION = f"{MQTT_PREFIX}/+/+/+"
DEVICE_MESSAGE_KINDS = ("telemetry", "event", "status")


def notices_topic(enterprise_id: str) -> str:
    return f"{MQTT_PREFIX}/{enterprise_id}/notices"
