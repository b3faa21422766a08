"""The frame every simulated device shares: messages, faults, options, the clock, seeded noise.

A model is a small physical simulation stepped forward in scenario time: `step(t_s)` advances it
to `t_s` seconds after the scenario's start and returns the messages the device sent since the
previous step (telemetry, events, status), each stamped with its own time. Called at the model's
`interval_s`, a model publishes at its natural rate; the same seed, options, faults and clock give
the same messages, bit for bit.

Faults every model knows (besides its own):
- `offline` — the device vanishes: its last will (the bare `offline` status the broker publishes
  for it) at the start, silence, then `status` online and normal traffic at the end.
  `last_will: false` makes it just fall silent, which only the heartbeat rule can notice; that
  rule judges arrival time, so only a real-time run (speed 1) shows it.
- `sensor_gone_mad` — one metric (`metric`, default the model's main one) reads physically
  impossible values, outside the valid range of `docs/devices.md`, or a fixed `value` if given.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Final, Literal

import orjson

from simulators.devices.contract import METRICS

Kind = Literal["telemetry", "event", "status"]


@dataclass(frozen=True, slots=True)
class Message:
    """One thing a device sends, `t_s` seconds into the scenario. `body` is the payload without its
    timestamp: `{"metrics": {...}}`, `{"event": name, "data": {...}}` or `{"online": bool}`.
    `raw`, if set, is sent as it is instead: a last will is fixed when the device connects, so it
    is the bare word `offline`, with no timestamp (ingest stamps it on arrival)."""

    t_s: float
    kind: Kind
    body: Mapping[str, Any]
    raw: bytes | None = None

    def payload(self, ts_ms: int) -> dict[str, Any]:
        return {"ts": ts_ms, **self.body}

    def encode(self, ts_ms: int) -> bytes:
        return self.raw if self.raw is not None else orjson.dumps(self.payload(ts_ms))


def telemetry(t_s: float, metrics: Mapping[str, float]) -> Message:
    return Message(t_s, "telemetry", {"metrics": dict(metrics)})


def event(t_s: float, name: str, **data: Any) -> Message:
    return Message(t_s, "event", {"event": name, "data": data})


def status(t_s: float, online: bool) -> Message:
    return Message(t_s, "status", {"online": online})


def last_will(t_s: float) -> Message:
    """What the broker publishes for a device that vanished: the will it set when it connected."""
    return Message(t_s, "status", {"online": False}, raw=b"offline")


@dataclass(frozen=True, slots=True)
class Clock:
    """Scenario time 0 is `start` (timezone-aware; its zone is the site's local time)."""

    start: datetime = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday, midnight UTC

    def __post_init__(self) -> None:
        if self.start.tzinfo is None:
            raise ValueError("the clock's start must carry a timezone")

    def at(self, t_s: float) -> datetime:
        """Local date and time at scenario second `t_s` (exact across daylight-saving changes)."""
        return (self.start.astimezone(UTC) + timedelta(seconds=t_s)).astimezone(self.start.tzinfo)

    def hour(self, t_s: float) -> float:
        """Local hour of the day, 0 <= h < 24, at scenario second `t_s`."""
        local = self.at(t_s)
        return local.hour + local.minute / 60 + (local.second + local.microsecond / 1e6) / 3600

    @property
    def start_ms(self) -> int:
        return round(self.start.timestamp() * 1000)


def bumps(hour: float, peaks: Sequence[tuple[float, float, float]]) -> float:
    """Sum of smooth daily bumps (centre hour, width in hours, height), wrapping at midnight."""
    total = 0.0
    for centre, width, height in peaks:
        d = (hour - centre + 12) % 24 - 12
        total += height * math.exp(-0.5 * (d / width) ** 2)
    return total


# --- parameters of options and faults, checked with messages a scenario author can act on -------


@dataclass(frozen=True, slots=True)
class Param:
    kind: Literal["number", "bool", "string"]
    default: Any = None  # None: absent unless given (or required)
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    help: str = ""

    def check(self, name: str, value: Any) -> Any:
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be true or false, got {value!r}")
            return value
        if self.kind == "string":
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name} must be a non-empty string, got {value!r}")
            if self.choices and value not in self.choices:
                raise ValueError(f"{name} must be one of {', '.join(self.choices)}; got {value!r}")
            return value
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"{name} must be a number, got {value!r}")
        if self.minimum is not None and value < self.minimum:
            raise ValueError(f"{name} must be at least {self.minimum:g}, got {value:g}")
        if self.maximum is not None and value > self.maximum:
            raise ValueError(f"{name} must be at most {self.maximum:g}, got {value:g}")
        return float(value)


def check_params(what: str, specs: Mapping[str, Param], given: Mapping[str, Any]) -> dict[str, Any]:
    """`given` checked against `specs`, defaults filled in; a ValueError names `what` was wrong."""
    if unknown := sorted(set(given) - set(specs)):
        allowed = ", ".join(sorted(specs)) or "none"
        raise ValueError(f"{what}: unknown {', '.join(map(repr, unknown))}; allowed: {allowed}")
    out: dict[str, Any] = {}
    for name, spec in specs.items():
        if name in given:
            out[name] = spec.check(f"{what}: {name}", given[name])
        elif spec.required:
            raise ValueError(
                f"{what}: {name} is required ({spec.help})" if spec.help else f"{what}: {name} is required"
            )
        else:
            out[name] = spec.default
    return out


@dataclass(frozen=True, slots=True)
class FaultSpec:
    help: str
    params: Mapping[str, Param] = field(default_factory=dict)
    # A lasting fault has a duration (`for_min`); an incident happens once, at its start.
    lasting: bool = True


@dataclass(frozen=True, slots=True)
class Fault:
    kind: str
    start_s: float
    end_s: float  # equal to start_s for an incident
    params: Mapping[str, Any] = field(default_factory=dict)

    def active(self, t_s: float) -> bool:
        return self.start_s <= t_s < self.end_s


GENERIC_FAULTS: Final[dict[str, FaultSpec]] = {
    "offline": FaultSpec(
        "the device drops off the network: last will, silence, back online at the end",
        {"last_will": Param("bool", True, help="publish the offline status (false: just fall silent)")},
    ),
}
METRIC_FAULTS: Final[dict[str, FaultSpec]] = {
    "sensor_gone_mad": FaultSpec(
        "a sensor reads physically impossible values (outside its valid range)",
        {
            "metric": Param("string", help="which metric (default: the device's main one)"),
            "value": Param("number", help="a fixed reading instead of random impossible ones"),
        },
    ),
}
COMMON_OPTIONS: Final[dict[str, Param]] = {
    "interval_s": Param("number", minimum=0.1, help="seconds between samples"),
}


class DeviceModel:
    """Subclasses set `profile`, `interval_s`, `primary_metric`, `FAULTS`, `OPTIONS` and implement
    `_advance(start, end)`: simulate from `start` (exclusive; None before the first step) to `end`
    and return the messages sent in between, the sample at `end` included."""

    profile: ClassVar[str]
    interval_s: ClassVar[float]
    primary_metric: ClassVar[str | None] = None
    FAULTS: ClassVar[Mapping[str, FaultSpec]] = {}
    OPTIONS: ClassVar[Mapping[str, Param]] = {}

    def __init__(
        self,
        device_id: str,
        *,
        seed: int | str = 0,
        attributes: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        faults: Sequence[Fault] = (),
        clock: Clock | None = None,
    ) -> None:
        self.device_id = device_id
        self.attributes = dict(attributes or {})
        self.options = check_params(
            f"{device_id} ({self.profile})", {**COMMON_OPTIONS, **self.OPTIONS}, options or {}
        )
        self.interval = float(self.options["interval_s"] or type(self).interval_s)
        specs = self.fault_specs()
        checked = []
        for fault in faults:
            if fault.kind not in specs:
                raise ValueError(
                    f"{device_id}: {fault.kind!r} is not a fault of a {self.profile}; "
                    f"expected one of {', '.join(sorted(specs))}"
                )
            params = check_params(f"{device_id}: {fault.kind}", specs[fault.kind].params, fault.params)
            checked.append(Fault(fault.kind, fault.start_s, fault.end_s, params))
        self.faults = tuple(sorted(checked, key=lambda f: f.start_s))
        self.clock = clock or Clock()
        # Physics and the device's own habits draw from one stream, faults from another, so adding
        # a fault changes nothing before it starts.
        # The seed alone decides (not the id), so a device renamed behaves the same.
        self.rng = random.Random(f"{seed}")
        self.fault_rng = random.Random(f"{seed}:faults")
        self._last: float | None = None

    @classmethod
    def fault_specs(cls) -> dict[str, FaultSpec]:
        extra = METRIC_FAULTS if METRICS[cls.profile] else {}
        return {**GENERIC_FAULTS, **extra, **cls.FAULTS}

    def attr(self, name: str, default: float) -> float:
        """A numeric rating from the registered attributes (how the rules will judge the device)."""
        value = self.attributes.get(name, default)
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default

    def active(self, kind: str, t_s: float) -> Fault | None:
        return next((f for f in self.faults if f.kind == kind and f.active(t_s)), None)

    def incidents(self, kind: str, start: float | None, end: float) -> list[Fault]:
        """Incidents (or fault starts) of `kind` due in (start, end]; [0, end] on the first step."""
        return [f for f in self.faults if f.kind == kind and _within(f.start_s, start, end)]

    def step(self, t_s: float) -> list[Message]:
        """Advance to scenario second `t_s` (after the previous step) and return what was sent."""
        if t_s < 0 or (self._last is not None and t_s <= self._last):
            raise ValueError(
                f"{self.device_id}: steps must move forward in time (at {t_s} after {self._last})"
            )
        start, self._last = self._last, t_s
        messages = self._advance(start, t_s)
        if start is None:
            messages.insert(0, status(0.0, True))  # what a device says first when it connects
        messages = self._generic_faults(start, t_s, messages)
        messages.sort(key=lambda m: m.t_s)  # stable: same-time messages keep the model's order
        return messages

    def _advance(self, start: float | None, end: float) -> list[Message]:
        raise NotImplementedError

    def _generic_faults(self, start: float | None, end: float, messages: list[Message]) -> list[Message]:
        for fault in self.faults:
            if fault.kind == "sensor_gone_mad":
                mad = (m.kind == "telemetry" and fault.active(m.t_s) for m in messages)
                messages = [
                    self._mad(m, fault) if is_mad else m for m, is_mad in zip(messages, mad, strict=True)
                ]
        for fault in self.faults:
            if fault.kind != "offline":
                continue
            messages = [m for m in messages if not fault.active(m.t_s)]
            if fault.params.get("last_will", True) and _within(fault.start_s, start, end):
                messages.append(last_will(fault.start_s))
            if _within(fault.end_s, start, end):
                messages.append(status(fault.end_s, True))
        return messages

    def _mad(self, message: Message, fault: Fault) -> Message:
        metric = str(fault.params.get("metric") or self.primary_metric)
        metrics = dict(message.body["metrics"])
        if metric not in metrics:
            return message
        value = fault.params.get("value")
        if value is None:
            lo, hi = METRICS[self.profile][metric]
            span = (hi - lo) * self.fault_rng.uniform(0.05, 1.0)
            value = round(hi + span if self.fault_rng.random() < 0.5 else lo - span, 2)
        metrics[metric] = float(value)
        return telemetry(message.t_s, metrics)


def _within(x: float, start: float | None, end: float) -> bool:
    return (x >= 0 if start is None else x > start) and x <= end


class SampledModel(DeviceModel):
    """A device whose physics tick every `TICK_S` seconds and which publishes one reading per
    step. Subclasses implement `_tick(t, dt)` (may return events) and `_sample(t)` (the metrics)."""

    TICK_S: ClassVar[float] = 1.0

    def __init__(self, device_id: str, **kwargs: Any) -> None:
        super().__init__(device_id, **kwargs)
        self._ticked = 0.0

    def _advance(self, start: float | None, end: float) -> list[Message]:
        out: list[Message] = []
        dt = min(self.TICK_S, self.interval)
        while self._ticked + dt <= end + 1e-9:
            self._ticked += dt
            out.extend(self._tick(self._ticked, dt))
        if end > self._ticked:  # a step between ticks: cover the rest exactly
            out.extend(self._tick(end, end - self._ticked))
            self._ticked = end
        sample = self._sample(end)
        if sample:
            out.append(telemetry(end, sample))
        return out

    def _tick(self, t: float, dt: float) -> list[Message]:
        raise NotImplementedError

    def _sample(self, t: float) -> dict[str, float]:
        raise NotImplementedError
