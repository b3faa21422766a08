"""The file format of a device profile: its TOML tables as pydantic models.

`detectors.rules.profiles` validates a file with these models and turns them into the dataclasses
the engine runs. The structure (keys, types, ranges) is the models'; what a part means against the
rest of the profile (a rule's metrics, events and attribute defaults) is checked by validators that
read the `Known` context. Each [[rules]] table is validated on its own (`RuleHead` first, to pick
the model of its kind in `RULE_TABLES`), so that its errors name the rule.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationInfo,
    field_validator,
    model_validator,
)

from detectors.rules.expr import Expr, Limit, limits_of, metrics_of, parse_condition, parse_limit
from vigil.catalogue import SEVERITIES, Severity, catalogue
from vigil.errors import show

DEFAULT_TIMEZONE = "Asia/Shanghai"
DEFAULT_NIGHT = ("22:00", "06:00")
DEFAULT_HEARTBEAT = "attr:heartbeat_s[300]"
NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")  # profiles, metrics and events
_HHMM = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")
_WORDS = ("and", "or", "not")  # of the condition language: never a metric


def timezone_or_none(name: object) -> ZoneInfo | None:
    if not isinstance(name, str):
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def minutes_or_none(value: object) -> int | None:
    m = _HHMM.fullmatch(value) if isinstance(value, str) else None
    return int(m.group(1)) * 60 + int(m.group(2)) if m else None


@dataclass(frozen=True, slots=True)
class Known:
    """What the parts of a profile are checked against: the file's name, then (for the rules) the
    metrics, events and attribute defaults the profile declares."""

    name: str
    metrics: frozenset[str]
    events: frozenset[str]
    defaults: Mapping[str, float]


def _known(info: ValidationInfo) -> Known:
    assert isinstance(info.context, Known), "profiles are validated with a Known context"
    return info.context


# --- the values ------------------------------------------------------------------------------------


def _metric_name(value: str) -> str:
    if value in _WORDS:
        raise ValueError(f"expected a metric name, got {show(value)}, a word of the condition language")
    return _event_name(value)


def _event_name(value: str) -> str:
    if not NAME.fullmatch(value):
        raise ValueError(f"expected a lowercase name (a-z, then a-z, 0-9 or _), got {show(value)}")
    return value


def _timezone(value: str) -> str:
    if timezone_or_none(value) is None:
        raise ValueError(f"unknown timezone {show(value)}; expected an IANA name such as {DEFAULT_TIMEZONE}")
    return value


def _hhmm(value: str) -> str:
    if minutes_or_none(value) is None:
        raise ValueError(f"expected a time of day as HH:MM (00:00 to 23:59), got {show(value)}")
    return value


def _catalogued(code: str) -> str:
    if code not in catalogue():
        raise ValueError(
            f"{show(code)} is not a code of the violation catalogue (vigil/data/violations.toml)"
        )
    return code


def _op(value: str) -> str:
    if value not in ("<", "<="):
        raise ValueError(f"expected '<' (before the event's date) or '<=' (not after it), got {show(value)}")
    return value


def _check_defaults(limits: tuple[Limit, ...], defaults: Mapping[str, float]) -> None:
    for limit in limits:
        if limit.attr is not None and limit.default is None and limit.attr not in defaults:
            raise ValueError(
                f"attr:{limit.attr} has no default; write attr:{limit.attr}[number] or add it to [attributes]"
            )


def _duration(value: object, info: ValidationInfo) -> Limit:
    """A duration: a number of seconds (at least 0) or an attr: limit with a default."""
    limit = parse_limit(value)  # an ExpressionError is a ValueError: pydantic reports it at the key
    _check_defaults((limit,), _known(info).defaults)
    if limit.attr is None and limit.const * limit.mul + limit.add < 0:
        raise ValueError(f"expected a duration of at least 0 seconds, got {show(value)}")
    return limit


def _condition(value: object, info: ValidationInfo) -> Expr:
    if not isinstance(value, str):
        raise ValueError(f'expected a condition such as "temperature > attr:max_temp_c", got {show(value)}')
    expr = parse_condition(value)
    known = _known(info)
    unknown = [m for m in metrics_of(expr) if m not in known.metrics]
    if unknown:
        raise ValueError(f"unknown metric {unknown[0]!r}; the profile declares {sorted(known.metrics)}")
    _check_defaults(limits_of(expr), known.defaults)
    return expr


def _event(value: str, info: ValidationInfo) -> str:
    events = _known(info).events
    if value not in events:
        raise ValueError(f"{show(value)} is not one of the profile's events {sorted(events)}")
    return value


MetricName = Annotated[str, AfterValidator(_metric_name)]
EventName = Annotated[str, AfterValidator(_event_name)]
Duration = Annotated[Limit, PlainValidator(_duration)]
Condition = Annotated[Expr, PlainValidator(_condition)]
Event = Annotated[str, AfterValidator(_event)]
Code = Annotated[str, AfterValidator(_catalogued)]
RuleKind = Literal["threshold", "event_count", "event", "state_timer", "date_compare"]


# --- the tables ------------------------------------------------------------------------------------


class _Table(BaseModel):
    """A TOML table of a profile: no unknown keys, and strict types (a number is an integer or a
    float, never a string or a boolean)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class MetricTable(_Table):
    model_config = ConfigDict(title="metric")

    unit: str
    min: float
    max: float

    @model_validator(mode="after")
    def _range(self) -> Self:
        if not self.min < self.max:
            raise ValueError(f"expected min < max, got min = {self.min:g} and max = {self.max:g}")
        return self


class ScheduleTable(_Table):
    model_config = ConfigDict(title="schedule")

    timezone: Annotated[str, AfterValidator(_timezone)] = DEFAULT_TIMEZONE
    night_start: Annotated[str, AfterValidator(_hhmm)] = DEFAULT_NIGHT[0]
    night_end: Annotated[str, AfterValidator(_hhmm)] = DEFAULT_NIGHT[1]


class ProfileTable(_Table):
    """The whole file but its rules, which are checked one by one against it (`RULE_TABLES`)."""

    model_config = ConfigDict(title="profile")

    profile: str | None = None
    description: str = ""
    metrics: dict[MetricName, MetricTable] = {}
    events: list[EventName] = []
    attributes: dict[str, float] = {}  # before heartbeat_s, whose limit may read them
    schedule: ScheduleTable = ScheduleTable()
    heartbeat_s: Limit = Field(DEFAULT_HEARTBEAT, validate_default=True)
    rules: list[dict[str, Any]] = []  # [[rules]]

    @field_validator("profile")
    @classmethod
    def _named_as_the_file(cls, value: str | None, info: ValidationInfo) -> str | None:
        name = _known(info).name
        if value is not None and value != name:
            raise ValueError(f"{show(value)} does not match the file name {name!r}")
        return value

    @field_validator("events")
    @classmethod
    def _unique(cls, events: list[str]) -> list[str]:
        twice = sorted({e for e in events if events.count(e) > 1})
        if twice:
            raise ValueError(f"expected each event once, got {', '.join(twice)} more than once")
        return events

    @field_validator("heartbeat_s", mode="plain")
    @classmethod
    def _heartbeat(cls, value: object, info: ValidationInfo) -> Limit:
        limit = parse_limit(value)
        _check_defaults((limit,), info.data.get("attributes", {}))
        return limit


class RuleHead(BaseModel):
    """What every rule has, read first to pick the model of its kind."""

    model_config = ConfigDict(extra="allow", frozen=True, strict=True)

    code: Code
    kind: RuleKind


class _Rule(_Table):
    code: Code
    severity: Severity | None = None  # default: the catalogue's

    def rule_severity(self) -> Severity:
        """`severity`, or the catalogue's for the code."""
        return self.severity or catalogue()[self.code].severity


class ThresholdTable(_Rule):
    model_config = ConfigDict(title="threshold rule")

    kind: Literal["threshold"]
    when: Condition
    clear: Condition | None = None
    for_s: Duration = Field(0, validate_default=True)
    night_severity: Severity | None = None  # either night key turns the night on
    night_for_s: Duration | None = None  # default: for_s
    escalate_after_s: Duration | None = None
    escalate_to: Severity | None = None

    @model_validator(mode="after")
    def _escalation(self) -> Self:
        if (self.escalate_after_s is None) != (self.escalate_to is None):
            raise ValueError("escalate_after_s and escalate_to go together")
        severity = self.rule_severity()
        if self.escalate_to is not None and SEVERITIES.index(self.escalate_to) <= SEVERITIES.index(severity):
            raise ValueError(f"escalate_to {self.escalate_to} must be more severe than severity {severity}")
        return self


class EventCountTable(_Rule):
    model_config = ConfigDict(title="event_count rule")

    kind: Literal["event_count"]
    event: Event
    count: int = Field(ge=1)
    window_s: Duration
    quiet_s: Duration | None = None  # default: window_s


class EventTable(_Rule):
    model_config = ConfigDict(title="event rule")

    kind: Literal["event"]
    event: Event
    quiet_s: Duration | None = None
    clear_event: Event | None = None

    @model_validator(mode="after")
    def _clears(self) -> Self:
        if self.quiet_s is None and self.clear_event is None:
            raise ValueError("an event rule needs quiet_s, clear_event or both, or it would never clear")
        if self.clear_event == self.event:
            raise ValueError("clear_event must differ from event")
        return self


class StateTimerTable(_Rule):
    model_config = ConfigDict(title="state_timer rule")

    kind: Literal["state_timer"]
    start_event: Event
    stop_event: Event
    for_s: Duration

    @model_validator(mode="after")
    def _two_events(self) -> Self:
        if self.start_event == self.stop_event:
            raise ValueError("start_event and stop_event must differ")
        return self


class DateCompareTable(_Rule):
    model_config = ConfigDict(title="date_compare rule")

    kind: Literal["date_compare"]
    event: Event
    field: str = Field(min_length=1)  # keys of the event's data
    key: Annotated[str, Field(min_length=1)] | None = None
    op: Annotated[str, AfterValidator(_op)] = "<"  # before the event's date, or not after it


RuleTable = ThresholdTable | EventCountTable | EventTable | StateTimerTable | DateCompareTable
RULE_TABLES: Mapping[RuleKind, type[RuleTable]] = {
    "threshold": ThresholdTable,
    "event_count": EventCountTable,
    "event": EventTable,
    "state_timer": StateTimerTable,
    "date_compare": DateCompareTable,
}
