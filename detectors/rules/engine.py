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
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from detectors.rules.expr import Condition, Limit, compile_condition, limits_of, metrics_of, text
from detectors.rules.profiles import (
    DateCompareSpec,
    EventCountSpec,
    EventSpec,
    Profile,
    StateTimerSpec,
    ThresholdSpec,
    load_profiles,
    minutes_or_none,
    timezone_or_none,
)
from vigil.catalogue import SEVERITIES, Severity, violation_type
from vigil.events import (
    DeviceEvent,
    DeviceMessage,
    DeviceStatus,
    Telemetry,
    Violation,
    ViolationState,
    violation_id,
)
from vigil.registry import Device

OFFLINE = "DEVICE_OFFLINE"
OUT_OF_RANGE = "SENSOR_OUT_OF_RANGE"
_EMPTY: Mapping[str, Any] = {}
_RANK = {s: i for i, s in enumerate(SEVERITIES)}


# --- state: plain data ----------------------------------------------------------------------------


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


# --- compiled rules --------------------------------------------------------------------------------


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


def _unit(unit: str) -> str:
    """The unit after a value (" °C"); nothing for a 0/1 flag."""
    return f" {unit}" if unit and unit != "0/1" else ""


def _duration(ms: int) -> str:
    seconds = ms / 1000
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


class _Rule:
    """A rule compiled for one device's attributes. Subclasses say when their timer is due and what
    happens then, and what an event does to them."""

    __slots__ = ("code", "name_en", "severity")

    def __init__(self, code: str, severity: Severity) -> None:
        self.code = code
        self.name_en = violation_type(code).name_en
        self.severity: Severity = severity

    def due(self, st: RuleState) -> int | None:
        return None

    def fire(self, engine: RuleEngine, dev: DeviceState, st: RuleState, at: int) -> None:
        """The timer at `at` (device time) is due."""

    def on_event(self, engine: RuleEngine, dev: DeviceState, st: RuleState, msg: DeviceEvent) -> None:
        """An event this rule listens to."""

    def report(
        self,
        engine: RuleEngine,
        dev: DeviceState,
        st: RuleState,
        state: ViolationState,
        at: int,
        summary: str,
        evidence: dict[str, Any],
        vid: str | None = None,
    ) -> None:
        """Emit the episode in `st` (its id, start and severity) as `state` at `at`."""
        assert st.raised is not None and st.since is not None
        engine.emit(dev, self.code, vid or st.raised, state, st.since, at, st.severity, summary, evidence)


class ThresholdRule(_Rule):
    __slots__ = (
        "clear",
        "clear_text",
        "esc_ms",
        "esc_to",
        "for_ms",
        "limits",
        "metrics",
        "night_for_ms",
        "night_severity",
        "primary",
        "when",
        "when_text",
    )

    def __init__(self, spec: ThresholdSpec, resolve: Resolver) -> None:
        super().__init__(spec.code, spec.severity)
        self.when: Condition = compile_condition(spec.when, resolve)
        self.clear: Condition = (
            compile_condition(spec.clear, resolve)
            if spec.clear is not None
            else compile_condition(spec.when, resolve, negate=True)
        )
        self.when_text = text(spec.when, resolve)
        self.clear_text = text(spec.clear, resolve) if spec.clear is not None else f"not ({self.when_text})"
        self.for_ms = _ms(resolve(spec.for_s))
        self.night_severity: Severity | None = spec.night_severity
        self.night_for_ms = _ms(resolve(spec.night_for_s)) if spec.night_for_s is not None else None
        self.esc_ms = _ms(resolve(spec.escalate_after_s)) if spec.escalate_after_s is not None else None
        self.esc_to: Severity | None = spec.escalate_to
        self.metrics = metrics_of(spec.when)
        self.primary = self.metrics[0]
        self.limits = resolve.used(spec.when, spec.clear, spec.for_s)

    def due(self, st: RuleState) -> int | None:
        if st.raised is None:
            if st.since is None:
                return None
            # A raise on held values waits until just after the deadline: a reading at the
            # deadline itself decides (and is the value reported), whether or not a tick came first.
            return st.since + self.for_ms + 1 if st.holding else st.last + self.for_ms
        if self.esc_ms is not None and self.esc_to is not None and _RANK[st.severity] < _RANK[self.esc_to]:
            return st.raised_at + self.esc_ms
        return None

    def fire(self, engine: RuleEngine, dev: DeviceState, st: RuleState, at: int) -> None:
        if st.raised is not None:
            self.escalate(engine, dev, st, at)
        elif st.holding:
            assert st.since is not None
            self.raise_(engine, dev, st, st.since + self.for_ms)  # it held, as last reported
        else:
            self.reset(st)  # it left the condition for the band and stayed there for_s: over

    @staticmethod
    def reset(st: RuleState) -> None:
        st.since, st.raised, st.holding = None, None, False
        st.low, st.high = math.inf, -math.inf

    def raise_(self, engine: RuleEngine, dev: DeviceState, st: RuleState, at: int) -> None:
        assert st.since is not None
        severity = self.severity
        if self.night_severity is not None and dev.program.is_night(at):
            severity = self.night_severity
        st.raised = violation_id("device", dev.device_id, self.code, st.since)
        st.raised_at, st.severity = at, severity
        night = " at night" if severity != self.severity else ""
        lasted = at - st.since
        summary = f"{self.name_en}: {self._values(dev)} ({self.when_text})" + (
            f" for {_duration(lasted)}" if lasted >= 1000 else ""
        )
        self.report(engine, dev, st, "active", at, summary + night, self._evidence(dev, st))
        if self.esc_ms is not None and self.esc_to is not None and _RANK[severity] < _RANK[self.esc_to]:
            engine.schedule(dev, at + self.esc_ms)

    def escalate(self, engine: RuleEngine, dev: DeviceState, st: RuleState, at: int) -> None:
        """Still active after `escalate_after_s`: an `active` violation of the higher severity with
        its own id (the raise's id + "-" + severity). The alert store keeps one open alert per
        source and code and the worse severity of its violations, so this upgrades that alert."""
        assert st.raised is not None and st.since is not None and self.esc_to is not None
        st.severity = self.esc_to
        lasted = _duration(at - st.raised_at)
        summary = f"{self.name_en}: still {self._values(dev)} after {lasted}; upgraded to {self.esc_to}"
        evidence = self._evidence(dev, st)
        evidence["escalated_from"] = st.raised
        self.report(engine, dev, st, "active", at, summary, evidence, vid=f"{st.raised}-{self.esc_to}")

    def clear_(self, engine: RuleEngine, dev: DeviceState, st: RuleState, at: int) -> None:
        assert st.raised is not None and st.since is not None
        summary = f"{self.name_en} ended: {self._values(dev)} after {_duration(at - st.since)}"
        self.report(engine, dev, st, "cleared", at, summary, self._evidence(dev, st))
        self.reset(st)

    def _values(self, dev: DeviceState) -> str:
        units = dev.program.units
        parts = []
        for m in self.metrics:
            value = dev.values.get(m)
            shown = "?" if value is None else f"{value:g}"
            parts.append(f"{m} {shown}{_unit(units.get(m, ''))}")
        return ", ".join(parts)

    def _evidence(self, dev: DeviceState, st: RuleState) -> dict[str, Any]:
        evidence: dict[str, Any] = {
            "rule": "threshold",
            "condition": self.when_text,
            "clear": self.clear_text,
            "values": {m: dev.values.get(m) for m in self.metrics},
            "for_s": self.for_ms / 1000,
            "since": st.since,
            "limits": dict(self.limits),
        }
        if st.low <= st.high:
            evidence["metric"] = self.primary
            evidence["lowest"], evidence["highest"] = st.low, st.high
        return evidence


class EventCountRule(_Rule):
    __slots__ = ("count", "event", "quiet_ms", "window_ms")

    def __init__(self, spec: EventCountSpec, resolve: Resolver) -> None:
        super().__init__(spec.code, spec.severity)
        self.event, self.count = spec.event, spec.count
        self.window_ms, self.quiet_ms = _ms(resolve(spec.window_s)), _ms(resolve(spec.quiet_s))

    def on_event(self, engine: RuleEngine, dev: DeviceState, st: RuleState, msg: DeviceEvent) -> None:
        ts = msg.ts
        if st.raised is not None:
            st.last = ts
            engine.schedule(dev, ts + self.quiet_ms)
            return
        times = st.times if st.times is not None else []
        times.append(ts)
        while times and times[0] < ts - self.window_ms:
            times.pop(0)
        if len(times) > self.count:
            del times[: len(times) - self.count]
        st.times = times
        if len(times) >= self.count:
            st.since, st.last = times[0], ts
            st.raised = violation_id("device", dev.device_id, self.code, st.since)
            st.raised_at, st.severity, st.times = ts, self.severity, None
            summary = (
                f"{self.name_en}: {self.count} {self.event} events within {_duration(ts - st.since)}"
                f" (limit {self.count - 1} in {_duration(self.window_ms)})"
            )
            self.report(engine, dev, st, "active", ts, summary, self._evidence(st))
            engine.schedule(dev, ts + self.quiet_ms)

    def due(self, st: RuleState) -> int | None:
        return st.last + self.quiet_ms if st.raised is not None else None

    def fire(self, engine: RuleEngine, dev: DeviceState, st: RuleState, at: int) -> None:
        assert st.raised is not None and st.since is not None
        summary = f"{self.name_en} ended: no {self.event} for {_duration(self.quiet_ms)}"
        self.report(engine, dev, st, "cleared", at, summary, self._evidence(st))
        st.raised, st.since, st.times = None, None, None

    def _evidence(self, st: RuleState) -> dict[str, Any]:
        return {
            "rule": "event_count",
            "event": self.event,
            "count": self.count,
            "window_s": self.window_ms / 1000,
            "first": st.since,
            "last": st.last,
        }


class EventRule(_Rule):
    __slots__ = ("clear_event", "event", "quiet_ms")

    def __init__(self, spec: EventSpec, resolve: Resolver) -> None:
        super().__init__(spec.code, spec.severity)
        self.event, self.clear_event = spec.event, spec.clear_event
        self.quiet_ms = _ms(resolve(spec.quiet_s)) if spec.quiet_s is not None else None

    def on_event(self, engine: RuleEngine, dev: DeviceState, st: RuleState, msg: DeviceEvent) -> None:
        ts = msg.ts
        if msg.event == self.clear_event:
            if st.raised is not None:
                self._clear(engine, dev, st, ts, f"{self.name_en} ended: {msg.event}")
            return
        if st.raised is None:
            st.since = st.raised_at = ts
            st.raised = violation_id("device", dev.device_id, self.code, ts)
            st.severity = self.severity
            evidence = {"rule": "event", "event": msg.event, "data": msg.data}
            self.report(engine, dev, st, "active", ts, f"{self.name_en}: {msg.event}", evidence)
        st.last = ts
        if self.quiet_ms is not None:
            engine.schedule(dev, ts + self.quiet_ms)

    def due(self, st: RuleState) -> int | None:
        if st.raised is None or self.quiet_ms is None:
            return None
        return st.last + self.quiet_ms

    def fire(self, engine: RuleEngine, dev: DeviceState, st: RuleState, at: int) -> None:
        assert self.quiet_ms is not None
        quiet = _duration(self.quiet_ms)
        self._clear(engine, dev, st, at, f"{self.name_en} ended: no {self.event} for {quiet}")

    def _clear(self, engine: RuleEngine, dev: DeviceState, st: RuleState, at: int, summary: str) -> None:
        assert st.raised is not None and st.since is not None
        evidence = {"rule": "event", "event": self.event, "first": st.since, "last": st.last}
        self.report(engine, dev, st, "cleared", at, summary, evidence)
        st.raised, st.since = None, None


class StateTimerRule(_Rule):
    __slots__ = ("for_ms", "start_event", "stop_event")

    def __init__(self, spec: StateTimerSpec, resolve: Resolver) -> None:
        super().__init__(spec.code, spec.severity)
        self.start_event, self.stop_event = spec.start_event, spec.stop_event
        self.for_ms = _ms(resolve(spec.for_s))

    def on_event(self, engine: RuleEngine, dev: DeviceState, st: RuleState, msg: DeviceEvent) -> None:
        ts = msg.ts
        if msg.event == self.start_event:
            if st.since is None:  # a repeated start while already started changes nothing
                st.since = ts
                if self.for_ms == 0:
                    self.fire(engine, dev, st, ts)
                else:
                    engine.schedule(dev, ts + self.for_ms)
            return
        if st.raised is not None and st.since is not None:
            summary = f"{self.name_en} ended: {self.stop_event} after {_duration(ts - st.since)}"
            self.report(engine, dev, st, "cleared", ts, summary, self._evidence(st))
        st.since, st.raised = None, None

    def due(self, st: RuleState) -> int | None:
        return st.since + self.for_ms if st.since is not None and st.raised is None else None

    def fire(self, engine: RuleEngine, dev: DeviceState, st: RuleState, at: int) -> None:
        assert st.since is not None
        st.raised = violation_id("device", dev.device_id, self.code, st.since)
        st.raised_at, st.severity = at, self.severity
        lasted = _duration(at - st.since)
        summary = f"{self.name_en}: {self.start_event} without {self.stop_event} for {lasted}"
        self.report(engine, dev, st, "active", at, summary, self._evidence(st))

    def _evidence(self, st: RuleState) -> dict[str, Any]:
        return {
            "rule": "state_timer",
            "start_event": self.start_event,
            "stop_event": self.stop_event,
            "since": st.since,
            "for_s": self.for_ms / 1000,
        }


class DateCompareRule(_Rule):
    """Point violations: `active` only (the filling happened; nothing clears it)."""

    __slots__ = ("event", "field", "key", "op")

    def __init__(self, spec: DateCompareSpec, resolve: Resolver) -> None:
        super().__init__(spec.code, spec.severity)
        self.event, self.field, self.key, self.op = spec.event, spec.field, spec.key, spec.op

    def on_event(self, engine: RuleEngine, dev: DeviceState, st: RuleState, msg: DeviceEvent) -> None:
        raw = msg.data.get(self.field)
        try:
            if not isinstance(raw, str) or len(raw) != 10:
                raise ValueError(raw)
            due = date.fromisoformat(raw)
        except ValueError:
            engine.stats.bad_event_data += 1
            return
        today, day_start = dev.program.local_day(msg.ts)
        if not (due < today if self.op == "<" else due <= today):
            return
        key_raw = msg.data.get(self.key) if self.key is not None else None
        key = str(key_raw) if isinstance(key_raw, str | int) and not isinstance(key_raw, bool) else "?"
        if st.day != day_start:
            st.day, st.seen = day_start, []
        seen = st.seen if st.seen is not None else []
        if key in seen:
            return  # one violation per key and day
        seen.append(key)
        st.seen = seen
        # The id names the key too: two overdue cylinders filled the same day are two violations
        # (the alert store groups them into the device's one open alert of this code).
        vid = violation_id("device", dev.device_id, f"{self.code}/{key}", day_start)
        label = f" {self.key} {key}" if self.key is not None else ""
        summary = f"{self.name_en}:{label} {self.field} {due}, {self.event} on {today}"
        evidence = {"rule": "date_compare", "event": self.event, "data": msg.data, "date": today.isoformat()}
        engine.emit(dev, self.code, vid, "active", msg.ts, msg.ts, self.severity, summary, evidence)


class Resolver:
    """Resolves the limits of one profile for one device's attributes, remembering which it used."""

    def __init__(self, profile: Profile, attributes: Mapping[str, Any]) -> None:
        self._profile, self._attributes = profile, attributes

    def __call__(self, limit: Limit) -> float:
        return limit.resolve(self._attributes, self._profile.attributes)

    def used(self, *exprs: Any) -> dict[str, float]:
        """The attributes read by these conditions and limits, resolved, for evidence."""
        out: dict[str, float] = {}
        for expr in exprs:
            if expr is None:
                continue
            limits = (expr,) if isinstance(expr, Limit) else limits_of(expr)
            for limit in limits:
                if limit.attr is not None:
                    out[limit.attr] = Limit(attr=limit.attr, default=limit.default).resolve(
                        self._attributes, self._profile.attributes
                    )
        return out


# --- a profile compiled for one set of attribute values -------------------------------------------


class Program:
    __slots__ = (
        "conds",
        "detector",
        "heartbeat_ms",
        "night",
        "on_event",
        "profile",
        "ranges",
        "rules",
        "tz",
        "units",
    )

    def __init__(self, profile: Profile, attributes: Mapping[str, Any]) -> None:
        resolve = Resolver(profile, attributes)
        self.profile = profile.name
        self.detector = f"rules:{profile.name}"
        self.ranges = {m.name: (m.min, m.max) for m in profile.metrics.values()}
        self.units = {m.name: m.unit for m in profile.metrics.values()}
        self.heartbeat_ms = _ms(resolve(profile.heartbeat_s))
        schedule = profile.schedule
        self.tz: ZoneInfo = timezone_or_none(attributes.get("timezone")) or ZoneInfo(schedule.timezone)
        start = minutes_or_none(attributes.get("night_start"))
        end = minutes_or_none(attributes.get("night_end"))
        default_start, default_end = (
            minutes_or_none(schedule.night_start),
            minutes_or_none(schedule.night_end),
        )
        assert default_start is not None and default_end is not None  # validated at load
        self.night = (default_start if start is None else start, default_end if end is None else end)

        conds: list[ThresholdRule] = []
        others: list[_Rule] = []
        for spec in profile.rules:
            if isinstance(spec, ThresholdSpec):
                conds.append(ThresholdRule(spec, resolve))
            elif isinstance(spec, EventCountSpec):
                others.append(EventCountRule(spec, resolve))
            elif isinstance(spec, EventSpec):
                others.append(EventRule(spec, resolve))
            elif isinstance(spec, StateTimerSpec):
                others.append(StateTimerRule(spec, resolve))
            else:
                others.append(DateCompareRule(spec, resolve))
        self.conds: tuple[ThresholdRule, ...] = tuple(conds)
        # Threshold rules first: a device's states line up with `rules`, and zip(conds, states)
        # walks just the threshold rules on the hot path.
        self.rules: tuple[_Rule, ...] = (*conds, *others)
        on_event: dict[str, list[tuple[_Rule, int]]] = {}
        for index, rule in enumerate(self.rules):
            for name in _listens(rule):
                on_event.setdefault(name, []).append((rule, index))
        self.on_event = {name: tuple(rules) for name, rules in on_event.items()}

    def new_states(self) -> list[RuleState]:
        return [RuleState() for _ in self.rules]

    def is_night(self, ts: int) -> bool:
        local = datetime.fromtimestamp(ts / 1000, self.tz)
        minute = local.hour * 60 + local.minute
        start, end = self.night
        return start <= minute < end if start < end else minute >= start or minute < end

    def local_day(self, ts: int) -> tuple[date, int]:
        """The site-local date of `ts` and the epoch ms of its local midnight."""
        day = datetime.fromtimestamp(ts / 1000, self.tz).date()
        midnight = datetime(day.year, day.month, day.day, tzinfo=self.tz)
        return day, int(midnight.timestamp() * 1000)


def _listens(rule: _Rule) -> tuple[str, ...]:
    if isinstance(rule, EventCountRule | DateCompareRule):
        return (rule.event,)
    if isinstance(rule, EventRule):
        return (rule.event,) if rule.clear_event is None else (rule.event, rule.clear_event)
    if isinstance(rule, StateTimerRule):
        return (rule.start_event, rule.stop_event)
    return ()


def _hashable(value: object) -> object:
    return value if isinstance(value, str | int | float | bool | None) else repr(value)


class Rulebook:
    """The profiles, and their programs compiled per set of attribute values. Shared by the engines
    of every partition: a thousand freezers with default ratings share one program."""

    def __init__(self, profiles: Mapping[str, Profile] | None = None) -> None:
        self.profiles = dict(profiles) if profiles is not None else load_profiles()
        self._names = {name: p.attribute_names() for name, p in self.profiles.items()}
        self._programs: dict[tuple[object, ...], Program] = {}

    def program(self, profile: str, attributes: Mapping[str, Any]) -> Program | None:
        names = self._names.get(profile)
        if names is None:
            return None
        key = (profile, *(_hashable(attributes.get(n)) for n in names))
        program = self._programs.get(key)
        if program is None:
            program = self._programs[key] = Program(self.profiles[profile], attributes)
        return program


# --- the engine ----------------------------------------------------------------------------------


class RuleEngine:
    """Rule state for the devices of one partition (or any set of devices), and the timers."""

    def __init__(self, rulebook: Rulebook | None = None) -> None:
        self.rulebook = rulebook if rulebook is not None else Rulebook()
        self.watermark = 0  # newest received_at seen
        self.stats = EngineStats()
        self._devices: dict[str, DeviceState] = {}
        self._heap: list[tuple[int, int, DeviceState]] = []
        self._seq = itertools.count()
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
            self._offline(dev, dev.last_received + hb, dev.last_received + hb, "no message")
        if recv > dev.last_received:
            dev.last_received = recv
        if kind is DeviceStatus:
            assert isinstance(message, DeviceStatus)
            if message.online:
                if dev.offline_id is not None:
                    self._online(dev, recv, "status online")
            elif dev.offline_id is None:
                self._offline(dev, recv, recv, "status offline (or the MQTT last will)")
            self._queue_heartbeat(dev)
            return out
        if dev.offline_id is not None:
            self._online(dev, recv, "a message")
        if hb and (dev.queued is None or dev.last_received + hb < dev.queued):
            self._queue_heartbeat(dev)

        ts = message.ts
        if ts < dev.last_ts:
            self.stats.late += 1
            return out
        if dev.next_due is not None and dev.next_due <= ts:
            self._fire(dev, ts)  # timers that ran out by this message, as a tick would have fired them
        dev.last_ts = ts
        dev.offset = recv - ts
        if kind is Telemetry:
            assert isinstance(message, Telemetry)
            self._telemetry(dev, message, ts)
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

    def _telemetry(self, dev: DeviceState, msg: Telemetry, ts: int) -> None:
        if ts == dev.last_telemetry_ts:
            self.stats.duplicates += 1
            return
        dev.last_telemetry_ts = ts
        prog = dev.program
        ranges = prog.ranges
        values = dev.values
        bad: dict[str, float] | None = None
        for name, x in msg.metrics.items():
            r = ranges.get(name)
            if r is None:
                continue  # not a metric of this profile
            if r[0] <= x <= r[1]:
                values[name] = x
            else:  # physically impossible: reported, and kept away from the other rules
                if bad is None:
                    bad = {}
                bad[name] = x
        if bad is not None or dev.range_id is not None:
            self._range(dev, msg, bad, ts)

        for rule, st in zip(prog.conds, dev.states, strict=False):  # conds come first
            try:
                if st.raised is None:
                    if rule.when(values):
                        since = st.since
                        x = values[rule.primary]
                        if since is None:
                            st.since = since = ts
                            st.low = st.high = x
                        elif x < st.low:
                            st.low = x
                        elif x > st.high:
                            st.high = x
                        st.last = ts
                        lasted = ts - since
                        if lasted >= rule.for_ms or (
                            rule.night_for_ms is not None
                            and lasted >= rule.night_for_ms
                            and prog.is_night(ts)
                        ):
                            rule.raise_(self, dev, st, ts)
                        elif not st.holding:
                            st.holding = True
                            self.schedule(dev, since + rule.for_ms)
                    elif st.since is not None:
                        if rule.clear(values):
                            rule.reset(st)  # not long enough: the episode ends unraised
                        elif st.holding:
                            # In the hysteresis band: the count goes on, unless this lasts for_s.
                            st.holding = False
                            self.schedule(dev, st.last + rule.for_ms)
                elif rule.clear(values):
                    rule.clear_(self, dev, st, ts)
                else:
                    x = values[rule.primary]
                    if x < st.low:
                        st.low = x
                    elif x > st.high:
                        st.high = x
            except KeyError:
                continue  # a metric of the rule not reported yet: nothing to judge

    def _range(self, dev: DeviceState, msg: Telemetry, bad: dict[str, float] | None, ts: int) -> None:
        """One SENSOR_OUT_OF_RANGE episode per device: raised by the first impossible value, ended
        when every metric that had one has been reported possible again."""
        kind = violation_type(OUT_OF_RANGE)
        if bad is not None:
            if dev.range_id is None:
                dev.range_id = vid = violation_id("device", dev.device_id, OUT_OF_RANGE, ts)
                dev.range_since, dev.range_bad = ts, dict(bad)
                summary = f"{kind.name_en}: {self._impossible(dev, bad)}"
                evidence = {
                    "rule": "valid_range",
                    "readings": dict(bad),
                    "valid": {m: list(dev.program.ranges[m]) for m in bad},
                }
                self.emit(dev, OUT_OF_RANGE, vid, "active", ts, ts, kind.severity, summary, evidence)
                return
            assert dev.range_bad is not None
            dev.range_bad.update(bad)
        assert dev.range_bad is not None and dev.range_id is not None
        for name in list(dev.range_bad):
            if name in msg.metrics and (bad is None or name not in bad):
                del dev.range_bad[name]  # reported again, and possible this time
        if not dev.range_bad:
            shown = ", ".join(f"{m} {x:g}" for m, x in msg.metrics.items() if m in dev.program.ranges)
            evidence = {"rule": "valid_range", "values": dict(msg.metrics)}
            vid, since = dev.range_id, dev.range_since
            self.emit(
                dev,
                OUT_OF_RANGE,
                vid,
                "cleared",
                since,
                ts,
                kind.severity,
                f"{kind.name_en} ended: {shown}",
                evidence,
            )
            dev.range_id, dev.range_bad = None, None

    @staticmethod
    def _impossible(dev: DeviceState, bad: Mapping[str, float]) -> str:
        ranges, units = dev.program.ranges, dev.program.units
        return ", ".join(
            f"{m} {x:g}{_unit(units[m])} outside {ranges[m][0]:g} … {ranges[m][1]:g}" for m, x in bad.items()
        )

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

    # -- liveness --------------------------------------------------------------------------------

    def _offline(self, dev: DeviceState, since: int, at: int, why: str) -> None:
        dev.offline_id = violation_id("device", dev.device_id, OFFLINE, since)
        dev.offline_since = since
        kind = violation_type(OFFLINE)
        hb = dev.program.heartbeat_ms
        summary = (
            f"{kind.name_en}: no message for {_duration(hb)}"
            if why == "no message"
            else f"{kind.name_en}: {why}"
        )
        evidence = {
            "rule": "offline",
            "reason": why,
            "last_message": dev.last_received,
            "heartbeat_s": hb / 1000,
        }
        self.emit(dev, OFFLINE, dev.offline_id, "active", since, at, kind.severity, summary, evidence)

    def _online(self, dev: DeviceState, at: int, why: str) -> None:
        assert dev.offline_id is not None
        kind = violation_type(OFFLINE)
        vid, since = dev.offline_id, dev.offline_since
        summary = f"{kind.name_en} ended: {why} after {_duration(max(0, at - since))}"
        evidence = {"rule": "offline", "reason": why, "offline_since": since}
        self.emit(dev, OFFLINE, vid, "cleared", since, at, kind.severity, summary, evidence)
        dev.offline_id = None

    # -- timers ----------------------------------------------------------------------------------

    def schedule(self, dev: DeviceState, due: int) -> None:
        """A rule timer at `due` (device time)."""
        if dev.next_due is None or due < dev.next_due:
            dev.next_due = due
        self._enqueue(dev, due + dev.offset)

    def _enqueue(self, dev: DeviceState, key: int) -> None:
        if dev.queued is None or key < dev.queued:
            dev.queued = key
            heapq.heappush(self._heap, (key, next(self._seq), dev))

    def _queue_heartbeat(self, dev: DeviceState) -> None:
        hb = dev.program.heartbeat_ms
        if hb and dev.offline_id is None and dev.last_received:
            self._enqueue(dev, dev.last_received + hb + 1)

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
        heap = self._heap
        while heap and heap[0][0] <= now_ms:
            key, _, dev = heapq.heappop(heap)
            if dev.queued != key or self._devices.get(dev.device_id) is not dev:
                continue  # superseded by an earlier entry, or the device is gone
            dev.queued = None
            if dev.next_due is not None and dev.next_due <= now_ms - dev.offset:
                self._fire(dev, now_ms - dev.offset)
            hb = dev.program.heartbeat_ms
            if hb and dev.offline_id is None and dev.last_received and now_ms - dev.last_received > hb:
                self._offline(dev, dev.last_received + hb, dev.last_received + hb, "no message")
            if dev.next_due is not None:
                self._enqueue(dev, dev.next_due + dev.offset)
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
