"""The engine's state: per rule and device, per device, and its counters. Plain data (numbers,
strings, small lists), rebuilt by replaying messages."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vigil.catalogue import Severity

if TYPE_CHECKING:
    from detectors.rules.program import Program


@dataclass(slots=True)
class RuleState:
    """One rule's state for one device. Which fields a rule uses depends on its kind."""

    since: int | None = None  # the episode's start: the condition, the first event, the door opening
    raised: str | None = None  # the violation id while active
    raised_at: int = 0
    severity: Severity = "info"  # as last emitted
    low: float = math.inf  # extremes of the rule's first metric during the episode
    high: float = -math.inf
    last: int = 0  # the latest event of the episode; threshold: when the condition last held
    holding: bool = False  # threshold, before the raise: the condition held at the latest reading
    times: list[int] | None = None  # event_count: recent events
    day: int = 0  # date_compare: the local day of `seen`
    seen: list[str] | None = None  # date_compare: keys already reported that day


@dataclass(slots=True, eq=False)
class DeviceState:
    device_id: str
    enterprise_id: str
    site_id: str
    profile: str
    attrs: Mapping[str, Any]  # the registry's attributes last bound (compared by identity first)
    program: Program
    states: list[RuleState]
    values: dict[str, float] = field(default_factory=dict)  # the latest valid value of each metric
    last_ts: int = 0  # newest device time seen; older messages are late
    last_telemetry_ts: int = 0
    last_event_ts: int = 0
    last_event: str = ""
    last_received: int = 0  # ingest time of the newest message, for the heartbeat
    offset: int = 0  # received_at - ts of the latest message
    next_due: int | None = None  # earliest rule timer (device time); may be early, never late
    queued: int | None = None  # the engine's timer-queue entry for this device (ingest time)
    offline_id: str | None = None
    offline_since: int = 0
    range_id: str | None = None
    range_since: int = 0
    range_bad: dict[str, float] | None = None  # metric → the impossible value


@dataclass(slots=True)
class EngineStats:
    messages: int = 0
    late: int = 0  # older than the device's newest message: ignored
    duplicates: int = 0
    unknown_profile: int = 0
    unknown_events: int = 0
    bad_event_data: int = 0
    violations: int = 0
