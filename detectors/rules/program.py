"""Profiles compiled for the engine: a `Program` is one profile bound to one set of attribute
values (its rules, metric ranges, heartbeat and night), and the `Rulebook` compiles and shares
them, so a thousand freezers with default ratings share one program."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from detectors.rules.date_compare import DateCompareRule
from detectors.rules.event import EventRule
from detectors.rules.event_count import EventCountRule
from detectors.rules.profiles import (
    EventCountSpec,
    EventSpec,
    Profile,
    StateTimerSpec,
    ThresholdSpec,
    load_profiles,
    minutes_or_none,
    timezone_or_none,
)
from detectors.rules.rule import Resolver, Rule, to_ms
from detectors.rules.state import RuleState
from detectors.rules.state_timer import StateTimerRule
from detectors.rules.threshold import ThresholdRule


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
        self.heartbeat_ms = to_ms(resolve(profile.heartbeat_s))
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
        others: list[Rule] = []
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
        self.rules: tuple[Rule, ...] = (*conds, *others)
        on_event: dict[str, list[tuple[Rule, int]]] = {}
        for index, rule in enumerate(self.rules):
            for name in rule.listens():
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
