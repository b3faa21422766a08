"""Device profiles: one TOML file per equipment type in `detectors/profiles/`, validated at load.

A profile names the type's metrics (unit and physically possible range), its events, the defaults
of the attributes its limits read, and its rules. `docs/devices.md` is the contract the shipped
profiles implement; the file format is described in `detectors/rules/__init__.py`.

Every error names the file and the rule (its position and code), so a bad edit fails the service
at start with a message that says what to fix, never later on a device's reading.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from detectors.rules.expr import (
    Expr,
    ExpressionError,
    Limit,
    limits_of,
    metrics_of,
    parse_condition,
    parse_limit,
)
from vigil.catalogue import SEVERITIES, Severity, catalogue
from vigil.errors import ConfigurationError

DEFAULT_TIMEZONE = "Asia/Shanghai"
DEFAULT_NIGHT = ("22:00", "06:00")
DEFAULT_HEARTBEAT = "attr:heartbeat_s[300]"
_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_HHMM = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")


class ProfileError(ConfigurationError):
    """A device profile that does not load; the message names the file and the rule."""


@dataclass(frozen=True, slots=True)
class Metric:
    name: str
    unit: str
    min: float
    max: float


@dataclass(frozen=True, slots=True)
class Schedule:
    """Site-local night hours. Devices override them with the attributes `timezone`,
    `night_start` and `night_end` ("HH:MM")."""

    timezone: str = DEFAULT_TIMEZONE
    night_start: str = DEFAULT_NIGHT[0]
    night_end: str = DEFAULT_NIGHT[1]


@dataclass(frozen=True, slots=True)
class ThresholdSpec:
    """A condition over the metrics that must hold for `for_s`; it ends when `clear` holds (or, without
    one, as soon as the condition does not). Optionally stricter at night and upgraded while active."""

    code: str
    severity: Severity
    when: Expr
    clear: Expr | None
    for_s: Limit
    night_severity: Severity | None = None
    night_for_s: Limit | None = None
    escalate_after_s: Limit | None = None
    escalate_to: Severity | None = None
    kind: str = "threshold"


@dataclass(frozen=True, slots=True)
class EventCountSpec:
    """`count` events within `window_s`; cleared after `quiet_s` without one."""

    code: str
    severity: Severity
    event: str
    count: int
    window_s: Limit
    quiet_s: Limit
    kind: str = "event_count"


@dataclass(frozen=True, slots=True)
class EventSpec:
    """Raised by an event; cleared `quiet_s` after the last one, or by `clear_event`."""

    code: str
    severity: Severity
    event: str
    quiet_s: Limit | None
    clear_event: str | None
    kind: str = "event"


@dataclass(frozen=True, slots=True)
class StateTimerSpec:
    """`start_event` without `stop_event` for `for_s` (a door left open); cleared by `stop_event`."""

    code: str
    severity: Severity
    start_event: str
    stop_event: str
    for_s: Limit
    kind: str = "state_timer"


@dataclass(frozen=True, slots=True)
class DateCompareSpec:
    """An event whose `data[field]` date (YYYY-MM-DD) is before (op "<") or not after (op "<=") the
    event's own site-local date; one violation per `data[key]` and day."""

    code: str
    severity: Severity
    event: str
    field: str
    key: str | None
    op: str
    kind: str = "date_compare"


RuleSpec = ThresholdSpec | EventCountSpec | EventSpec | StateTimerSpec | DateCompareSpec


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    description: str
    metrics: Mapping[str, Metric]
    events: frozenset[str]
    attributes: Mapping[str, float]  # defaults of the attributes the limits read
    heartbeat_s: Limit  # no message for this long: DEVICE_OFFLINE; 0 turns it off
    schedule: Schedule
    rules: tuple[RuleSpec, ...]
    source: str  # the file it came from, for messages

    def attribute_names(self) -> tuple[str, ...]:
        """Every attribute a limit of this profile reads (the key of its compiled programs)."""
        names: dict[str, None] = {}
        for limit in _all_limits(self):
            if limit.attr is not None:
                names[limit.attr] = None
        return (*names, "timezone", "night_start", "night_end")


def _all_limits(profile: Profile) -> list[Limit]:
    limits = [profile.heartbeat_s]
    for rule in profile.rules:
        if isinstance(rule, ThresholdSpec):
            limits += [*limits_of(rule.when), rule.for_s]
            limits += limits_of(rule.clear) if rule.clear is not None else ()
            limits += [x for x in (rule.night_for_s, rule.escalate_after_s) if x is not None]
        elif isinstance(rule, EventCountSpec):
            limits += [rule.window_s, rule.quiet_s]
        elif isinstance(rule, EventSpec):
            limits += [rule.quiet_s] if rule.quiet_s is not None else []
        elif isinstance(rule, StateTimerSpec):
            limits.append(rule.for_s)
    return limits


# --- loading -------------------------------------------------------------------------------------

_TOP_KEYS = {"profile", "description", "heartbeat_s", "events", "metrics", "attributes", "schedule", "rules"}
_COMMON = {"code", "kind", "severity"}
_RULE_KEYS: dict[str, set[str]] = {
    "threshold": _COMMON
    | {"when", "clear", "for_s", "night_severity", "night_for_s", "escalate_after_s", "escalate_to"},
    "event_count": _COMMON | {"event", "count", "window_s", "quiet_s"},
    "event": _COMMON | {"event", "quiet_s", "clear_event"},
    "state_timer": _COMMON | {"start_event", "stop_event", "for_s"},
    "date_compare": _COMMON | {"event", "field", "key", "op"},
}


class _Where:
    """Builds errors that name the file and, inside a rule, the rule."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.rule: str | None = None

    def __call__(self, message: str) -> ProfileError:
        where = f"{self.source}: rule {self.rule}" if self.rule else self.source
        return ProfileError(f"{where}: {message}")


def load_profile_text(text: str, name: str, source: str | None = None) -> Profile:
    """Parse and validate one profile; `name` is the equipment type (the file's stem)."""
    source = source or f"{name}.toml"
    err = _Where(source)
    if not _NAME.fullmatch(name):
        raise err(f"profile name {name!r} must be lowercase letters, digits and _")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise err(f"not valid TOML: {exc}") from None
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise err(f"unknown keys {sorted(unknown)}; expected some of {sorted(_TOP_KEYS)}")
    if raw.get("profile", name) != name:
        raise err(f"profile = {raw['profile']!r} does not match the file name {name!r}")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise err("description must be a string")

    metrics = _metrics(raw.get("metrics", {}), err)
    events = raw.get("events", [])
    if not isinstance(events, list) or not all(isinstance(e, str) and _NAME.fullmatch(e) for e in events):
        raise err("events must be a list of lowercase names")
    if len(set(events)) != len(events):
        raise err("events lists a name twice")
    attributes = _attributes(raw.get("attributes", {}), err)
    schedule = _schedule(raw.get("schedule", {}), err)
    heartbeat = _limit(raw.get("heartbeat_s", DEFAULT_HEARTBEAT), "heartbeat_s", err, attributes)

    rules_raw = raw.get("rules", [])
    if not isinstance(rules_raw, list):
        raise err("rules must be an array of tables ([[rules]])")
    rules: list[RuleSpec] = []
    codes: set[str] = set()
    for index, rule_raw in enumerate(rules_raw, start=1):
        err.rule = f"#{index}"
        if not isinstance(rule_raw, dict):
            raise err("must be a table")
        code = rule_raw.get("code")
        if isinstance(code, str):
            err.rule = f"#{index} ({code})"
        rule = _rule(rule_raw, err, metrics, frozenset(events), attributes)
        if rule.code in codes:
            raise err(f"code {rule.code} is already used by another rule of this profile")
        codes.add(rule.code)
        rules.append(rule)
    err.rule = None
    return Profile(
        name=name,
        description=description,
        metrics=metrics,
        events=frozenset(events),
        attributes=attributes,
        heartbeat_s=heartbeat,
        schedule=schedule,
        rules=tuple(rules),
        source=source,
    )


def load_profile(path: Path) -> Profile:
    return load_profile_text(path.read_text(encoding="utf-8"), path.stem, str(path))


def load_profiles(directory: Path | None = None) -> dict[str, Profile]:
    """Every `*.toml` in `directory`, or the profiles shipped in the package (cached)."""
    if directory is None:
        return dict(_shipped())
    return {p.stem: load_profile(p) for p in sorted(directory.glob("*.toml"))}


@lru_cache(maxsize=1)
def _shipped() -> dict[str, Profile]:
    folder = resources.files("detectors").joinpath("profiles")
    profiles = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            name = entry.name.removesuffix(".toml")
            profiles[name] = load_profile_text(
                entry.read_text(encoding="utf-8"), name, f"detectors/profiles/{entry.name}"
            )
    return profiles


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _metrics(raw: object, err: _Where) -> dict[str, Metric]:
    if not isinstance(raw, dict):
        raise err("metrics must be a table of name = { unit, min, max }")
    metrics = {}
    for name, spec in raw.items():
        if not _NAME.fullmatch(name) or name in ("and", "or", "not"):
            raise err(f"metric name {name!r} must be lowercase letters, digits and _")
        if not isinstance(spec, dict) or set(spec) != {"unit", "min", "max"}:
            raise err(f"metric {name}: expected exactly unit, min and max")
        low, high = _number(spec["min"]), _number(spec["max"])
        if low is None or high is None or not low < high:
            raise err(f"metric {name}: min and max must be numbers with min < max")
        if not isinstance(spec["unit"], str):
            raise err(f"metric {name}: unit must be a string")
        metrics[name] = Metric(name, spec["unit"], low, high)
    return metrics


def _attributes(raw: object, err: _Where) -> dict[str, float]:
    if not isinstance(raw, dict):
        raise err("attributes must be a table of name = default number")
    out = {}
    for name, value in raw.items():
        number = _number(value)
        if number is None:
            raise err(f"attribute default {name} must be a number, got {value!r}")
        out[name] = number
    return out


def _schedule(raw: object, err: _Where) -> Schedule:
    if not isinstance(raw, dict) or set(raw) - {"timezone", "night_start", "night_end"}:
        raise err("schedule takes only timezone, night_start and night_end")
    schedule = Schedule(
        timezone=raw.get("timezone", DEFAULT_TIMEZONE),
        night_start=raw.get("night_start", DEFAULT_NIGHT[0]),
        night_end=raw.get("night_end", DEFAULT_NIGHT[1]),
    )
    if timezone_or_none(schedule.timezone) is None:
        raise err(f"schedule: unknown timezone {schedule.timezone!r}")
    for key in ("night_start", "night_end"):
        if minutes_or_none(getattr(schedule, key)) is None:
            raise err(f"schedule: {key} must be HH:MM")
    return schedule


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


def _limit(value: object, key: str, err: _Where, defaults: Mapping[str, float]) -> Limit:
    try:
        limit = parse_limit(value)
    except ExpressionError as exc:
        raise err(f"{key}: {exc}") from None
    _check_defaults((limit,), key, err, defaults)
    return limit


def _check_defaults(limits: tuple[Limit, ...], key: str, err: _Where, defaults: Mapping[str, float]) -> None:
    for limit in limits:
        if limit.attr is not None and limit.default is None and limit.attr not in defaults:
            raise err(
                f"{key}: attr:{limit.attr} has no default; write attr:{limit.attr}[number] or add it"
                " to [attributes]"
            )


def _condition(
    value: object, key: str, err: _Where, metrics: Mapping[str, Metric], defaults: Mapping[str, float]
) -> Expr:
    if not isinstance(value, str):
        raise err(f'{key} must be a condition string such as "temperature > attr:max_temp_c"')
    try:
        expr = parse_condition(value)
    except ExpressionError as exc:
        raise err(f"{key}: {exc}") from None
    unknown = [m for m in metrics_of(expr) if m not in metrics]
    if unknown:
        raise err(f"{key}: unknown metric {unknown[0]!r}; the profile declares {sorted(metrics)}")
    _check_defaults(limits_of(expr), key, err, defaults)
    return expr


def _severity(value: object, key: str, err: _Where) -> Severity:
    for severity in SEVERITIES:
        if value == severity:
            return severity
    raise err(f"{key} must be one of {', '.join(SEVERITIES)}, got {value!r}")


def _event(value: object, key: str, err: _Where, events: frozenset[str]) -> str:
    if not isinstance(value, str) or value not in events:
        raise err(f"{key}: {value!r} is not one of the profile's events {sorted(events)}")
    return value


def _rule(
    raw: dict[str, Any],
    err: _Where,
    metrics: Mapping[str, Metric],
    events: frozenset[str],
    defaults: Mapping[str, float],
) -> RuleSpec:
    code = raw.get("code")
    if not isinstance(code, str) or code not in catalogue():
        raise err(f"code {code!r} is not in the violation catalogue (vigil/data/violations.toml)")
    kind = raw.get("kind")
    # A list or table is unhashable: `in` on the dict would raise TypeError, not refuse the file.
    if not isinstance(kind, str) or kind not in _RULE_KEYS:
        raise err(f"kind {kind!r} must be one of {', '.join(_RULE_KEYS)}")
    unknown = set(raw) - _RULE_KEYS[kind]
    if unknown:
        raise err(
            f"unknown keys {sorted(unknown)} for a {kind} rule; expected some of {sorted(_RULE_KEYS[kind])}"
        )
    severity = _severity(raw.get("severity", catalogue()[code].severity), "severity", err)

    def limit(key: str, default: object = None) -> Limit:
        """A duration: a number of seconds (at least 0) or an attr: limit."""
        value = raw.get(key, default)
        if value is None:
            raise err(f"{key} is required")
        duration = _limit(value, key, err, defaults)
        if duration.attr is None and duration.const * duration.mul + duration.add < 0:
            raise err(f"{key} must not be negative")
        return duration

    def need(key: str) -> object:
        if key not in raw:
            raise err(f"{key} is required")
        return raw[key]

    if kind == "threshold":
        when = _condition(need("when"), "when", err, metrics, defaults)
        clear = _condition(raw["clear"], "clear", err, metrics, defaults) if "clear" in raw else None
        night = "night_severity" in raw or "night_for_s" in raw
        night_severity = (
            _severity(raw.get("night_severity", severity), "night_severity", err) if night else None
        )
        escalate = "escalate_after_s" in raw or "escalate_to" in raw
        if escalate and not ("escalate_after_s" in raw and "escalate_to" in raw):
            raise err("escalate_after_s and escalate_to go together")
        escalate_to = _severity(raw["escalate_to"], "escalate_to", err) if escalate else None
        if escalate_to is not None and SEVERITIES.index(escalate_to) <= SEVERITIES.index(severity):
            raise err(f"escalate_to {escalate_to} must be more severe than severity {severity}")
        return ThresholdSpec(
            code=code,
            severity=severity,
            when=when,
            clear=clear,
            for_s=limit("for_s", 0),
            night_severity=night_severity,
            night_for_s=limit("night_for_s", raw.get("for_s", 0)) if night else None,
            escalate_after_s=limit("escalate_after_s") if escalate else None,
            escalate_to=escalate_to,
        )
    if kind == "event_count":
        count = need("count")
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise err("count must be a whole number of at least 1")
        return EventCountSpec(
            code=code,
            severity=severity,
            event=_event(need("event"), "event", err, events),
            count=count,
            window_s=limit("window_s"),
            quiet_s=limit("quiet_s", raw.get("window_s")),
        )
    if kind == "event":
        if "quiet_s" not in raw and "clear_event" not in raw:
            raise err("an event rule needs quiet_s, clear_event or both, or it would never clear")
        clear_event = _event(raw["clear_event"], "clear_event", err, events) if "clear_event" in raw else None
        event = _event(need("event"), "event", err, events)
        if clear_event == event:
            raise err("clear_event must differ from event")
        return EventSpec(
            code=code,
            severity=severity,
            event=event,
            quiet_s=limit("quiet_s") if "quiet_s" in raw else None,
            clear_event=clear_event,
        )
    if kind == "state_timer":
        start = _event(need("start_event"), "start_event", err, events)
        stop = _event(need("stop_event"), "stop_event", err, events)
        if start == stop:
            raise err("start_event and stop_event must differ")
        return StateTimerSpec(code, severity, start, stop, limit("for_s"))
    # date_compare
    field, key, op = need("field"), raw.get("key"), raw.get("op", "<")
    if not isinstance(field, str) or not field:
        raise err("field must name a key of the event's data")
    if key is not None and (not isinstance(key, str) or not key):
        raise err("key must name a key of the event's data")
    if op not in ("<", "<="):
        raise err(f"op must be '<' (before the event's date) or '<=' (not after it), got {op!r}")
    return DateCompareSpec(code, severity, _event(need("event"), "event", err, events), field, key, op)
