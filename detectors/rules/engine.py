"""The rule engine: device messages in, catalogue violations out. Pure logic, no I/O, no clock.

- `feed(message, device)` judges one message of a device against its profile's rules (compiled
  once per profile and set of attribute values, shared by every device with the same ratings).
- `tick(now_ms)` fires the timers whose moment has passed without a message: a door left open, a
  trapped passenger whose lift has gone quiet, a heartbeat missed, a quiet time after an event.

Time. Rules run on the device's own clock (`ts`); a device's messages older than its newest are
late and change nothing. Liveness (heartbeat, status) runs on ingest's clock (`received_at`): a
device clock that is off, or a recorded stream replayed with its old stamps, cannot make other
devices look offline. `tick` takes ingest time; each device's timers are moved onto its own clock
by its last known offset (`received_at - ts`). The engine's `watermark` is the newest
`received_at` it has seen.

Determinism. Every violation id is `violation_id("device", device, code, window_start)` with
window_start the moment the condition started (two exceptions: an escalation is the raise's id +
"-" + its severity; an overdue-cylinder filling names the cylinder and the local day). A timer
fires at its deadline whether a tick or the device's next message finds it due first, so a replay
of the same messages yields the same violations, whatever the batches and ticks were, as long as
no tick runs ahead of a message still to come. A `cleared` violation carries its raise's id.

State per device is plain data (numbers, strings, small lists), rebuilt by replaying messages.

Module layout: this module holds `RuleEngine` (feeding, binding devices to programs, the timers'
firing, output); `state` the per-device data; `program` the compiled profiles (`Program`,
`Rulebook`); `rule` the base of the rule kinds, one module each (`threshold`, `event_count`,
`event`, `state_timer`, `date_compare`); `builtin` DEVICE_OFFLINE and SENSOR_OUT_OF_RANGE;
`timers` the timer queue. The names other modules import from here are re-exported.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from detectors.rules.builtin import OFFLINE, OUT_OF_RANGE, offline, online
from detectors.rules.date_compare import DateCompareRule
from detectors.rules.event import EventRule
from detectors.rules.event_count import EventCountRule
from detectors.rules.program import Program, Rulebook
from detectors.rules.rule import Resolver, Rule
from detectors.rules.state import DeviceState, EngineStats, RuleState
from detectors.rules.state_timer import StateTimerRule
from detectors.rules.threshold import ThresholdRule, judge_telemetry
from detectors.rules.timers import TimerQueue
from vigil.catalogue import Severity
from vigil.events import (
    DeviceEvent,
    DeviceMessage,
    DeviceStatus,
    Telemetry,
    Violation,
    ViolationState,
)
from vigil.registry import Device

__all__ = [
    "OFFLINE",
    "OUT_OF_RANGE",
    "DateCompareRule",
    "DeviceState",
    "EngineStats",
    "EventCountRule",
    "EventRule",
    "Program",
    "Resolver",
    "Rule",
    "RuleEngine",
    "RuleState",
    "Rulebook",
    "StateTimerRule",
    "ThresholdRule",
]

_EMPTY: Mapping[str, Any] = {}


class RuleEngine:
    """Rule state for the devices of one partition (or any set of devices), and the timers."""

    def __init__(self, rulebook: Rulebook | None = None) -> None:
        self.rulebook = rulebook if rulebook is not None else Rulebook()
        self.watermark = 0  # newest received_at seen
        self.stats = EngineStats()
        self._devices: dict[str, DeviceState] = {}
        self._timers = TimerQueue()
        self._out: list[Violation] = []

    def __len__(self) -> int:
        return len(self._devices)

    def device(self, device_id: str) -> DeviceState | None:
        return self._devices.get(device_id)

    # -- feeding ---------------------------------------------------------------------------------

    def feed(self, message: DeviceMessage, device: Device | None = None) -> list[Violation]:
        """Judge one message; `device` is the registry's entry (its attributes), if known."""
        self.stats.messages += 1
        dev = self._devices.get(message.device_id)
        attrs = device.attributes if device is not None else _EMPTY
        if dev is None or dev.attrs is not attrs or dev.profile != message.profile:
            dev = self._bind(dev, message, attrs)
            if dev is None:
                self.stats.unknown_profile += 1
                return []
        out: list[Violation] = []
        self._out = out
        recv = message.received_at
        if recv > self.watermark:
            self.watermark = recv
        kind = type(message)

        # Liveness, on ingest's clock. A gap that no tick noticed (a quiet partition, a replay) is
        # raised here with the id a tick would have given it; any message but an offline status
        # then ends the episode.
        hb = dev.program.heartbeat_ms
        if dev.offline_id is None and hb and dev.last_received and recv - dev.last_received > hb:
            offline(self, dev, dev.last_received + hb, dev.last_received + hb, "no message")
        if recv > dev.last_received:
            dev.last_received = recv
        if kind is DeviceStatus:
            assert isinstance(message, DeviceStatus)
            if message.online:
                if dev.offline_id is not None:
                    online(self, dev, recv, "status online")
            elif dev.offline_id is None:
                offline(self, dev, recv, recv, "status offline (or the MQTT last will)")
            self._queue_heartbeat(dev)
            return out
        if dev.offline_id is not None:
            online(self, dev, recv, "a message")
        if hb and (dev.queued is None or dev.last_received + hb < dev.queued):
            self._queue_heartbeat(dev)

        ts = message.ts
        if ts < dev.last_ts:
            self.stats.late += 1
            if kind is DeviceEvent:
                assert isinstance(message, DeviceEvent)
                self._late_event(dev, message)
            return out
        if dev.next_due is not None and dev.next_due <= ts:
            self._fire(dev, ts)  # timers that ran out by this message, as a tick would have fired them
        dev.last_ts = ts
        dev.offset = recv - ts
        if kind is Telemetry:
            assert isinstance(message, Telemetry)
            judge_telemetry(self, dev, message, ts)
        else:
            assert isinstance(message, DeviceEvent)
            self._event(dev, message, ts)
        return out

    def _bind(
        self, dev: DeviceState | None, msg: DeviceMessage, attrs: Mapping[str, Any]
    ) -> DeviceState | None:
        program = self.rulebook.program(msg.profile, attrs)
        if program is None:
            if dev is not None:
                del self._devices[dev.device_id]  # re-registered under a profile without rules
            return None
        if dev is None:
            dev = DeviceState(
                msg.device_id,
                msg.enterprise_id,
                msg.site_id,
                msg.profile,
                attrs,
                program,
                program.new_states(),
            )
            self._devices[msg.device_id] = dev
            return dev
        if dev.profile != msg.profile:  # another type of device now: its old rule state means nothing
            dev.profile, dev.states, dev.values = msg.profile, program.new_states(), {}
            dev.range_id, dev.range_bad = None, None
        # Same profile, maybe new ratings: the rules line up, so the episodes under way go on.
        dev.attrs, dev.program = attrs, program
        dev.enterprise_id, dev.site_id = msg.enterprise_id, msg.site_id
        return dev

    def _late_event(self, dev: DeviceState, msg: DeviceEvent) -> None:
        """A late event reaches only the rules that judge each event on its own (ORDER_FREE), with a
        fresh state: the device's current episodes, judged in order, are left as they are."""
        for rule, _ in dev.program.on_event.get(msg.event, ()):
            if rule.ORDER_FREE:
                rule.on_event(self, dev, RuleState(), msg)

    def _event(self, dev: DeviceState, msg: DeviceEvent, ts: int) -> None:
        name = msg.event
        if ts == dev.last_event_ts and name == dev.last_event:
            self.stats.duplicates += 1
            return
        dev.last_event_ts, dev.last_event = ts, name
        handlers = dev.program.on_event.get(name)
        if handlers is None:
            self.stats.unknown_events += 1
            return
        states = dev.states
        for rule, index in handlers:
            rule.on_event(self, dev, states[index], msg)

    # -- timers ----------------------------------------------------------------------------------

    def schedule(self, dev: DeviceState, due: int) -> None:
        """A rule timer at `due` (device time)."""
        if dev.next_due is None or due < dev.next_due:
            dev.next_due = due
        self._timers.push(dev, due + dev.offset)

    def _queue_heartbeat(self, dev: DeviceState) -> None:
        hb = dev.program.heartbeat_ms
        if hb and dev.offline_id is None and dev.last_received:
            self._timers.push(dev, dev.last_received + hb + 1)

    def _fire(self, dev: DeviceState, until: int) -> None:
        """Fire every rule timer of `dev` due at or before `until` (device time), in order."""
        nxt: int | None = None
        for rule, st in zip(dev.program.rules, dev.states, strict=True):
            due = rule.due(st)
            while due is not None and due <= until:
                rule.fire(self, dev, st, due)
                due = rule.due(st)
            if due is not None and (nxt is None or due < nxt):
                nxt = due
        dev.next_due = nxt

    def tick(self, now_ms: int) -> list[Violation]:
        """Fire what is due by `now_ms` (ingest time: the partition's watermark, or the wall clock
        once the partition is caught up): rule timers on each device's own clock, heartbeats."""
        out: list[Violation] = []
        self._out = out
        for dev in self._timers.due(now_ms):
            if self._devices.get(dev.device_id) is not dev:
                continue  # the device is gone
            if dev.next_due is not None and dev.next_due <= now_ms - dev.offset:
                self._fire(dev, now_ms - dev.offset)
            hb = dev.program.heartbeat_ms
            if hb and dev.offline_id is None and dev.last_received and now_ms - dev.last_received > hb:
                offline(self, dev, dev.last_received + hb, dev.last_received + hb, "no message")
            if dev.next_due is not None:
                self._timers.push(dev, dev.next_due + dev.offset)
            self._queue_heartbeat(dev)
        return out

    # -- output ----------------------------------------------------------------------------------

    def emit(
        self,
        dev: DeviceState,
        code: str,
        vid: str,
        state: ViolationState,
        window_start: int,
        at: int,
        severity: Severity,
        summary: str,
        evidence: dict[str, Any],
    ) -> None:
        self.stats.violations += 1
        self._out.append(
            Violation(
                violation_id=vid,
                code=code,
                state=state,
                enterprise_id=dev.enterprise_id,
                site_id=dev.site_id,
                source_kind="device",
                source_id=dev.device_id,
                window_start=window_start,
                detected_at=at,
                severity=severity,
                detector=dev.program.detector,
                summary=f"{summary} on {dev.device_id}",
                evidence=evidence,
            )
        )
