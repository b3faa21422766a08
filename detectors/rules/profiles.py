"""Device profiles: one TOML file per equipment type in `detectors/profiles/`, validated at load.

A profile names the type's metrics (unit and physically possible range), its events, the defaults
of the attributes its limits read, and its rules. `docs/devices.md` is the contract the shipped
profiles implement; the file format is described in `detectors/rules/__init__.py`.

The file is parsed by the pydantic models of `detectors.rules.profile_tables` into the dataclasses
below, which the engine runs. Every error names the file, the rule (its position and code) and the
key, and says what was expected and what was found, so a bad edit fails the service at start with
a message that says what to fix, never later on a device's reading.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from detectors.rules.expr import Expr, Limit, limits_of
from detectors.rules.profile_tables import (
    DEFAULT_HEARTBEAT,
    DEFAULT_NIGHT,
    DEFAULT_TIMEZONE,
    NAME,
    RULE_TABLES,
    EventCountTable,
    EventTable,
    Known,
    ProfileTable,
    RuleHead,
    RuleTable,
    StateTimerTable,
    ThresholdTable,
    minutes_or_none,
    timezone_or_none,
)
from vigil.catalogue import Severity
from vigil.config_errors import explain
from vigil.errors import ConfigurationError
from vigil.registry import NUMBER, TIME_OF_DAY, TIMEZONE, ProfileCatalogue

__all__ = [  # the defaults and the two readers come from `profile_tables`, and are part of this API
    "DEFAULT_HEARTBEAT",
    "DEFAULT_NIGHT",
    "DEFAULT_TIMEZONE",
    "DateCompareSpec",
    "EventCountSpec",
    "EventSpec",
    "Metric",
    "Profile",
    "ProfileError",
    "RuleSpec",
    "Schedule",
    "StateTimerSpec",
    "ThresholdSpec",
    "load_profile",
    "load_profile_text",
    "load_profiles",
    "minutes_or_none",
    "registration_catalogue",
    "timezone_or_none",
]


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
#
# The file's structure is the pydantic models of `profile_tables`; here each validated table
# becomes the dataclass the engine runs.

_M = TypeVar("_M", bound=BaseModel)


def _validate(model: type[_M], raw: object, where: str, known: Known) -> _M:
    try:
        return model.model_validate(raw, context=known)
    except ValidationError as exc:
        raise ProfileError(explain(exc, model, where)) from None


def _spec(rule: RuleTable) -> RuleSpec:
    severity = rule.rule_severity()
    if isinstance(rule, ThresholdTable):
        night = rule.night_severity is not None or rule.night_for_s is not None
        return ThresholdSpec(
            code=rule.code,
            severity=severity,
            when=rule.when,
            clear=rule.clear,
            for_s=rule.for_s,
            night_severity=(rule.night_severity or severity) if night else None,
            night_for_s=(rule.for_s if rule.night_for_s is None else rule.night_for_s) if night else None,
            escalate_after_s=rule.escalate_after_s,
            escalate_to=rule.escalate_to,
        )
    if isinstance(rule, EventCountTable):
        quiet = rule.window_s if rule.quiet_s is None else rule.quiet_s
        return EventCountSpec(rule.code, severity, rule.event, rule.count, rule.window_s, quiet)
    if isinstance(rule, EventTable):
        return EventSpec(rule.code, severity, rule.event, rule.quiet_s, rule.clear_event)
    if isinstance(rule, StateTimerTable):
        return StateTimerSpec(rule.code, severity, rule.start_event, rule.stop_event, rule.for_s)
    return DateCompareSpec(rule.code, severity, rule.event, rule.field, rule.key, rule.op)


def load_profile_text(text: str, name: str, source: str | None = None) -> Profile:
    """Parse and validate one profile; `name` is the equipment type (the file's stem)."""
    source = source or f"{name}.toml"
    if not NAME.fullmatch(name):
        raise ProfileError(f"{source}: profile name {name!r} must be lowercase letters, digits and _")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{source}: not valid TOML: {exc}") from None
    table = _validate(ProfileTable, raw, source, Known(name, frozenset(), frozenset(), {}))
    metrics = {key: Metric(key, m.unit, m.min, m.max) for key, m in table.metrics.items()}
    known = Known(name, frozenset(metrics), frozenset(table.events), table.attributes)

    rules: list[RuleSpec] = []
    for index, rule_raw in enumerate(table.rules, start=1):
        code = rule_raw.get("code")
        where = f"{source}: rule #{index}" + (f" ({code})" if isinstance(code, str) else "")
        head = _validate(RuleHead, rule_raw, where, known)
        rule = _spec(_validate(RULE_TABLES[head.kind], rule_raw, where, known))
        used = [i for i, other in enumerate(rules, start=1) if other.code == rule.code]
        if used:
            raise ProfileError(
                f"{where}: code {rule.code} is already used by rule #{used[0]} of this profile"
            )
        rules.append(rule)
    return Profile(
        name=name,
        description=table.description,
        metrics=metrics,
        events=known.events,
        attributes=table.attributes,
        heartbeat_s=table.heartbeat_s,
        schedule=Schedule(table.schedule.timezone, table.schedule.night_start, table.schedule.night_end),
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


def registration_catalogue(profiles: Mapping[str, Profile]) -> ProfileCatalogue:
    """What registration checks of `profiles` (vigil.registry): each attribute a profile reads,
    typed. Published to the database by the shell and the telemetry detector for the API."""
    catalogue: ProfileCatalogue = {}
    for name, profile in profiles.items():
        kinds = dict.fromkeys((*profile.attributes, *profile.attribute_names()), NUMBER)
        kinds.update(timezone=TIMEZONE, night_start=TIME_OF_DAY, night_end=TIME_OF_DAY)
        catalogue[name] = kinds
    return catalogue


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
