"""Devices registered but never heard from: DEVICE_OFFLINE ("never connected") once the device's
heartbeat window has passed since its registration (issue 16.4). Pure logic; the telemetry detector
reads the registrations from the database and says which partition's devices are whose.

The rule engine knows a device only from its messages, so a device that never sends one would never
be judged. What the detector can know: its partition's history since `since` (the start of the
replay it rebuilt its state from) and the devices registered after that. Such a device with no
state in the engine has sent nothing at all since it was registered: never connected. A device
registered before `since` is left alone (it may have spoken before the window; its silence is then
the heartbeat's to judge once it speaks, or the offline alert raised before the restart stands).

The id is `violation_id("device", device, DEVICE_OFFLINE, registered_at + heartbeat)`: the same
whichever detector raises it, however often, so the alert store absorbs repeats. The device's first
message clears it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from detectors.rules.builtin import OFFLINE
from detectors.rules.program import Rulebook
from detectors.rules.rule import duration
from vigil.catalogue import violation_type
from vigil.events import Violation, violation_id

if TYPE_CHECKING:
    from detectors.rules.engine import RuleEngine

NEVER_CONNECTED = "never connected"


@dataclass(frozen=True, slots=True)
class Registered:
    device_id: str
    enterprise_id: str
    site_id: str
    profile: str
    attributes: Mapping[str, Any]
    registered_at: int  # epoch ms


class NeverConnected:
    """The never-connected devices of one partition: raised once each, cleared by a first message."""

    def __init__(self, rulebook: Rulebook, since: int) -> None:
        self._rulebook = rulebook
        self.since = since  # the partition's history is known from here on (ingest time, ms)
        self._raised: dict[str, Violation] = {}

    def __len__(self) -> int:
        return len(self._raised)

    def check(self, engine: RuleEngine, devices: Iterable[Registered], now: int) -> list[Violation]:
        """DEVICE_OFFLINE for each of `devices` (this partition's) silent since registration."""
        out: list[Violation] = []
        for d in devices:
            if d.device_id in self._raised or d.registered_at < self.since or engine.device(d.device_id):
                continue
            program = self._rulebook.program(d.profile, d.attributes)
            hb = program.heartbeat_ms if program is not None else 0
            if not hb or now <= d.registered_at + hb:
                continue  # no rules for it, no heartbeat, or its window has not passed yet
            assert program is not None
            due = d.registered_at + hb
            kind = violation_type(OFFLINE)
            v = Violation(
                violation_id=violation_id("device", d.device_id, OFFLINE, due),
                code=OFFLINE,
                state="active",
                enterprise_id=d.enterprise_id,
                site_id=d.site_id,
                source_kind="device",
                source_id=d.device_id,
                window_start=due,
                detected_at=due,
                severity=kind.severity,
                detector=program.detector,
                summary=f"{kind.name_en}: {NEVER_CONNECTED}, no message in the {duration(hb)} since"
                f" registration on {d.device_id}",
                evidence={
                    "rule": "offline",
                    "reason": NEVER_CONNECTED,
                    "registered_at": d.registered_at,
                    "heartbeat_s": hb / 1000,
                    # The figures of the summary people read (vigil.summaries).
                    "params": {"variant": "never_connected", "heartbeat_s": hb / 1000},
                },
            )
            self._raised[d.device_id] = v
            out.append(v)
        engine.stats.violations += len(out)
        return out

    def connected(self, device_id: str, at: int) -> list[Violation]:
        """The device's first message (ingest time `at`): the end of its never-connected episode."""
        raised = self._raised.pop(device_id, None)
        if raised is None:
            return []
        summary = f"{violation_type(OFFLINE).name_en} ended: first message on {device_id}"
        return [dataclasses.replace(raised, state="cleared", detected_at=at, summary=summary)]
