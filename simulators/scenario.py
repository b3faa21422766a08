"""Scenarios: a YAML file of sites, devices and scripted faults, rendered into the MQTT traffic the
devices would send, and published in (compressed) real time.

    name: freezer-door
    duration_min: 120          # or duration_s / duration_h
    speed: 60                  # default for `vigil simulate`: 60 simulated seconds per second
    seed: 7
    timezone: Asia/Shanghai    # the sites' local time (daily patterns, night)
    start: "21:30"             # local time of day at the start (quoted!); default: any
    enterprise: {id: sim-restaurant, name: Simulated Restaurant}
    sites:
      - {id: kitchen-1, name: Main kitchen}
    devices:
      - {id: freezer-1, type: freezer, site: kitchen-1, attributes: {duration_s: 900},
         model: {setpoint_c: -22}}
    faults:
      - {at_min: 12, device: freezer-1, fault: door_left_open, for_min: 20}

A fault names its device and its kind, starts `at_s`/`at_min`/`at_h` after the start, lasts
`for_s`/`for_min`/`for_h` (an incident such as `safety_valve_lift` has no duration), and carries
its own parameters as further keys (`passenger: true`). The faults of each type are listed by
`vigil simulate --faults`, and in `simulators.devices`.

Time: a scenario's timestamps are event time. Published at speed N, scenario second t goes out
t / N seconds after the start, stamped start + t; the start is placed `duration × (1 − 1/N)`
before now (then back to the last `start` time of day), so that no message is ever stamped in
the future when it is published (ingest refuses those), and detection, which judges event time,
does not depend on the speed.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import math
import random
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import Annotated, Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
)

from simulators.devices import MODELS, Clock, DeviceModel, Fault, make_device
from simulators.record import PlayStats, Recorded, header, play, write_recording
from vigil.config_errors import explain, key_path
from vigil.errors import VigilError, show
from vigil.events import ID_PATTERN
from vigil.topics import MQTT_PREFIX

SCENARIOS_DIR: Final = Path(__file__).parent / "scenarios"
REGISTRY_SETTLE_S: Final = 1.1  # CachedTable's miss_refresh_s (1 s), and a little
_UNITS: Final = {"s": 1.0, "min": 60.0, "h": 3600.0}
_START: Final = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?")  # a time of day


class ScenarioError(VigilError, ValueError):
    """A scenario file that cannot be used, saying where and why."""


@dataclass(frozen=True, slots=True)
class SiteSpec:
    site_id: str
    name: str
    enterprise_id: str
    enterprise_name: str


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    device_id: str
    profile: str
    site: SiteSpec
    attributes: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    faults: tuple[Fault, ...] = ()
    key: str = ""  # the id in the file: seeds the device's randomness whatever its id becomes

    def topic(self, kind: str) -> str:
        return f"{MQTT_PREFIX}/{self.site.enterprise_id}/{self.device_id}/{kind}"


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    duration_s: float
    devices: tuple[DeviceSpec, ...]
    description: str = ""
    speed: float = 60.0
    seed: int = 0
    timezone: tzinfo = UTC
    start: time | None = None
    path: Path | None = None

    @property
    def sites(self) -> tuple[SiteSpec, ...]:
        return tuple(dict.fromkeys(d.site for d in self.devices))

    @property
    def enterprises(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(d.site.enterprise_id for d in self.devices))

    def with_suffix(self, suffix: str) -> Scenario:
        """The same scenario under other ids (`<id>-<suffix>` for enterprises, sites and devices), so
        that runs sharing a broker and a database never meet; the traffic is otherwise identical."""

        def site(s: SiteSpec) -> SiteSpec:
            return replace(
                s, site_id=_suffixed(s.site_id, suffix), enterprise_id=_suffixed(s.enterprise_id, suffix)
            )

        devices = tuple(
            replace(d, device_id=_suffixed(d.device_id, suffix), site=site(d.site)) for d in self.devices
        )
        return replace(self, devices=devices)

    def clock(self, *, now: datetime | None = None, speed: float = math.inf) -> Clock:
        """Where scenario time 0 falls, for publishing at `speed` from `now`: late enough to be
        recent, early enough that nothing is stamped in the future (module docstring)."""
        now = now or datetime.now(UTC)
        lead = self.duration_s * max(0.0, 1.0 - 1.0 / speed)  # 1/inf == 0
        latest = (now - timedelta(seconds=lead)).astimezone(self.timezone).replace(microsecond=0)
        if self.start is None:
            return Clock(latest)
        day = latest.date()
        for _ in range(3):  # today's start time, or yesterday's (or the day before, across DST)
            candidate = datetime.combine(day, self.start, tzinfo=self.timezone)
            if candidate <= latest:
                return Clock(candidate)
            day -= timedelta(days=1)
        raise AssertionError("unreachable: a start time of day within three days")

    def models(self, clock: Clock) -> list[DeviceModel]:
        return [
            make_device(d.profile, d.device_id, seed=f"{self.seed}/{d.key or d.device_id}",
                        attributes=d.attributes, options=d.options, faults=d.faults, clock=clock)
            for d in self.devices
        ]  # fmt: skip

    def render(self, clock: Clock) -> Iterator[Recorded]:
        """Every message of every device, in time order, as MQTT messages stamped from `clock`."""
        streams = [
            self._stream(spec, model, clock)
            for spec, model in zip(self.devices, self.models(clock), strict=True)
        ]
        return heapq.merge(*streams, key=lambda r: r.t_s)

    def _stream(self, spec: DeviceSpec, model: DeviceModel, clock: Clock) -> Iterator[Recorded]:
        # Devices are not synchronised: each samples at its own phase within its interval.
        phase = round(
            random.Random(f"{self.seed}/{spec.key or spec.device_id}/phase").uniform(0, model.interval), 1
        )
        start_ms = clock.start_ms
        k = 0
        while (t := phase + k * model.interval) <= self.duration_s:
            for m in model.step(t):
                yield Recorded(m.t_s, spec.topic(m.kind), m.encode(start_ms + round(m.t_s * 1000)))
            k += 1


def _suffixed(ident: str, suffix: str) -> str:
    out = f"{ident}-{suffix}"
    if not ID_PATTERN.fullmatch(out):
        raise ScenarioError(f"{out!r} is not a valid id (1-64 characters of A-Z a-z 0-9 _ -)")
    return out


# --- loading ----------------------------------------------------------------------------------


def load(path: str | Path) -> Scenario:
    """Read and check a scenario file; a ScenarioError says what is wrong and where."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"cannot read scenario {path}: {exc.strerror or exc}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path}: not valid YAML: {exc}") from None
    try:
        return parse(doc, default_name=path.stem, path=path)
    except ScenarioError as exc:
        raise ScenarioError(f"{path.name}: {exc}") from None


def find(name: str) -> Path:
    """A scenario by path, or by name among the bundled ones (`freezer` → scenarios/freezer.yaml)."""
    path = Path(name)
    if path.exists():
        return path
    bundled = SCENARIOS_DIR / f"{name.removesuffix('.yaml')}.yaml"
    if bundled.exists():
        return bundled
    known = ", ".join(sorted(p.stem for p in SCENARIOS_DIR.glob("*.yaml")))
    raise ScenarioError(f"no scenario {name!r}: not a file, nor a bundled scenario ({known})")


def bundled() -> list[Path]:
    return sorted(SCENARIOS_DIR.glob("*.yaml"))


# The file's structure is pydantic models; what a part means against the rest of the file (a
# device's site, a fault's device, kind and timing) is checked by `parse` after them.


def _id(value: str) -> str:
    if not ID_PATTERN.fullmatch(value):
        raise ValueError(f"expected an id of 1-64 characters of A-Z a-z 0-9 _ -, got {show(value)}")
    return value


def _text(value: object) -> object:
    """YAML reads `name: 2026` as a number, `name: 2026-01-05` as a date: either is taken as text."""
    return str(value) if isinstance(value, int | float | date) and not isinstance(value, bool) else value


def _zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown timezone {show(value)}; use an IANA name such as Asia/Shanghai") from None
    return value


def _start(value: object) -> time:
    match = _START.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        hint = " (quote it: unquoted, YAML reads 21:30 as a number)" if type(value) is int else ""
        raise ValueError(f'expected a time of day such as "21:30", got {show(value)}{hint}')
    return time(int(match[1]), int(match[2]), int(match[3] or 0))


_Id = Annotated[str, AfterValidator(_id)]
_Text = Annotated[str, BeforeValidator(_text)]
_At = Annotated[float, Field(ge=0, allow_inf_nan=False)]  # a time after the start
_Length = Annotated[float, Field(gt=0, allow_inf_nan=False)]  # a duration


class _Table(BaseModel):  # no unknown keys, strict types (a number is never a string or a bool)
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class _EnterpriseTable(_Table):
    model_config = ConfigDict(title="enterprise")

    id: _Id
    name: _Text | None = None  # default: the id


# An enterprise given by its id alone (`enterprise: acme`) is named after it.
_Enterprise = Annotated[_EnterpriseTable, BeforeValidator(lambda v: {"id": v} if isinstance(v, str) else v)]


class _SiteTable(_Table):
    model_config = ConfigDict(title="site")

    id: _Id
    name: _Text | None = None  # default: the id
    enterprise: _Enterprise | None = None  # default: the scenario's


class _DeviceTable(_Table):
    model_config = ConfigDict(title="device")

    id: _Id
    type: str = Field(validation_alias=AliasChoices("type", "profile"))  # one of MODELS, checked by `parse`
    site: str | None = None  # default: the only site
    attributes: dict[str, Any] | None = None
    model: dict[str, Any] | None = None  # options of the simulation


class _FaultTable(_Table):
    model_config = ConfigDict(title="fault", extra="allow")  # further keys: the fault's parameters

    device: str
    fault: str
    at_s: _At | None = None  # one of at_* is required, and one of for_* but for an incident (`parse`)
    at_min: _At | None = None
    at_h: _At | None = None
    for_s: _Length | None = None
    for_min: _Length | None = None
    for_h: _Length | None = None


class _ScenarioTable(_Table):
    model_config = ConfigDict(title="scenario")

    name: _Text | None = None  # default: the file's name
    description: _Text | None = None
    duration_s: _Length | None = None  # one of duration_* is required (`parse`)
    duration_min: _Length | None = None
    duration_h: _Length | None = None
    speed: _Length = 60.0
    seed: int = 0
    timezone: Annotated[str, AfterValidator(_zone)] = "UTC"
    start: Annotated[time | None, BeforeValidator(_start)] = None  # default: any time of day
    enterprise: _Enterprise | None = None  # of the sites that name none
    sites: list[_SiteTable] | None = None
    devices: Annotated[list[_DeviceTable], Field(min_length=1)]
    faults: list[_FaultTable] | None = None


def _error(loc: tuple[int | str, ...], message: str) -> ScenarioError:
    return ScenarioError(": ".join(filter(None, (key_path(loc), message))))


def _span(table: _Table, word: str, loc: tuple[int | str, ...], *, required: bool) -> tuple[str, float]:
    """The key of the one `word_s`, `word_min` or `word_h` given, and its value in seconds."""
    given = [k for k in (f"{word}_{u}" for u in _UNITS) if getattr(table, k) is not None]
    if len(given) > 1:
        raise _error(loc, f"give one of {', '.join(given)}, not several")
    if required and not given:
        raise _error(loc, f"needs {word}_min (or {word}_s, {word}_h)")
    return (given[0], getattr(table, given[0]) * _UNITS[given[0].split("_")[1]]) if given else ("", 0.0)


def parse(doc: Any, *, default_name: str = "scenario", path: Path | None = None) -> Scenario:
    """A Scenario from a parsed YAML document (a ScenarioError names the key at fault)."""
    try:
        top = _ScenarioTable.model_validate(doc)
    except ValidationError as exc:
        raise ScenarioError(explain(exc, _ScenarioTable, mapping="mapping")) from None
    _, duration = _span(top, "duration", (), required=True)

    sites: dict[str, SiteSpec] = {}
    for i, s in enumerate(top.sites or ()):
        ent = s.enterprise or top.enterprise
        if s.id in sites:
            raise _error(("sites", i, "id"), f"site {s.id!r} is declared twice")
        if ent is None:
            raise _error(("sites", i), "no enterprise (give the scenario an `enterprise`, or the site one)")
        sites[s.id] = SiteSpec(s.id, s.name or s.id, ent.id, ent.name or ent.id)

    specs: dict[str, DeviceSpec] = {}
    types, named = ", ".join(sorted(MODELS)), ", ".join(sites) or "none"
    for i, d in enumerate(top.devices):
        if d.id in specs:
            raise _error(("devices", i, "id"), f"device {d.id} is declared twice")
        if d.type not in MODELS:
            raise _error(("devices", i, "type"), f"unknown type {show(d.type)}; expected one of {types}")
        if d.site is not None and d.site not in sites:
            raise _error(("devices", i, "site"), f"unknown site {show(d.site)}; sites are: {named}")
        if d.site is None and len(sites) != 1:
            raise _error(("devices", i), f"which site? give `site` (sites are: {named})")
        site = sites[d.site] if d.site is not None else next(iter(sites.values()))
        specs[d.id] = DeviceSpec(d.id, d.type, site, d.attributes or {}, d.model or {}, key=d.id)

    faults: dict[str, list[Fault]] = {k: [] for k in specs}
    ids = ", ".join(specs)
    for i, f in enumerate(top.faults or ()):
        if f.device not in specs:
            raise _error(("faults", i, "device"), f"unknown device {show(f.device)}; devices are: {ids}")
        profile = specs[f.device].profile
        known = MODELS[profile].fault_specs()
        if f.fault not in known:
            raise _error(
                ("faults", i, "fault"),
                f"unknown fault {show(f.fault)} for {f.device} (a {profile}); "
                f"its faults are: {', '.join(sorted(known))}",
            )
        at_key, at = _span(f, "at", ("faults", i), required=True)
        for_key, length = _span(f, "for", ("faults", i), required=known[f.fault].lasting)
        if for_key and not known[f.fault].lasting:
            raise _error(("faults", i, for_key), f"{f.fault} happens once; it takes no {for_key}")
        if at > duration:
            raise _error(
                ("faults", i, at_key),
                f"starts at {at / 60:g} min, after the scenario's end ({duration / 60:g} min)",
            )
        faults[f.device].append(Fault(f.fault, at, at + length, dict(f.model_extra or {})))

    devices = tuple(replace(spec, faults=tuple(faults[k])) for k, spec in specs.items())
    scenario = Scenario(
        name=top.name or default_name, duration_s=duration, devices=devices,
        description=(top.description or "").strip(), speed=top.speed, seed=top.seed,
        timezone=ZoneInfo(top.timezone), start=top.start, path=path,
    )  # fmt: skip
    try:  # the models check options, attributes and fault parameters
        scenario.models(Clock())
    except ValueError as exc:
        raise ScenarioError(str(exc)) from None
    return scenario


# --- running ------------------------------------------------------------------------------------


async def register(scenario: Scenario, pool: Any) -> None:
    """Register every device (and its enterprise and site) in the registry."""
    from vigil.registry import register_device

    for d in scenario.devices:
        await register_device(
            pool, enterprise_id=d.site.enterprise_id, enterprise_name=d.site.enterprise_name,
            site_id=d.site.site_id, site_name=d.site.name, device_id=d.device_id, profile=d.profile,
            attributes=dict(d.attributes),
        )  # fmt: skip


def render_to(scenario: Scenario, path: str | Path, *, now: datetime | None = None) -> int:
    """Render the whole scenario into a recording (scenario seconds as its times), stamped so
    that replaying it at any speed, any time later, stamps nothing in the future."""
    clock = scenario.clock(now=now)
    head = header(
        f"scenario {scenario.name}", scenario=scenario.name, seed=scenario.seed,
        start=clock.start.isoformat(), duration_s=scenario.duration_s,
    )  # fmt: skip
    return write_recording(path, scenario.render(clock), head)


async def publish(scenario: Scenario, url: str, *, speed: float | None = None) -> PlayStats:
    """Publish the scenario at `speed` (default: the scenario's) starting now."""
    speed = speed or scenario.speed
    records = list(scenario.render(scenario.clock(speed=speed)))  # rendering is cheap next to publishing
    return await play(records, url, speed=speed, label=f"{scenario.name} ×{speed:g}", total=len(records))


def describe_faults() -> str:
    lines = []
    for profile, model in sorted(MODELS.items()):
        lines.append(f"{profile}:")
        for kind, spec in sorted(model.fault_specs().items()):
            params = ", ".join(
                f"{k}={v.default!r}" if v.default is not None else k for k, v in spec.params.items()
            )
            timing = "for_min" if spec.lasting else "once"
            lines.append(f"  {kind:<24} ({timing}{', ' + params if params else ''}) — {spec.help}")
    return "\n".join(lines)


async def device_traffic_command(settings: Any, args: argparse.Namespace) -> int:
    """`vigil simulate`, `vigil record` and `vigil replay`."""
    if args.command == "simulate":
        return await _simulate(settings, args)
    from simulators.record import record, replay_file

    url = _mqtt_url(settings, args)
    if args.command == "record":
        n = await record(args.file, url, topic=args.topic, duration_s=args.duration)
        print(f"recorded {n} messages on {args.topic} to {args.file}")
    else:
        stats = await replay_file(args.file, url, speed=args.speed)
        print(f"{args.file}: {stats.summary()}")
    return 0


def _mqtt_url(settings: Any, args: argparse.Namespace) -> str:
    url = args.mqtt or settings.mqtt_url
    if not url:
        raise VigilError("no MQTT broker: pass --mqtt mqtt://host:port or set VIGIL_MQTT_URL")
    return str(url)


async def _simulate(settings: Any, args: argparse.Namespace) -> int:
    if args.faults:
        print(describe_faults())
        return 0
    if not args.scenario:
        names = ", ".join(p.stem for p in bundled())
        raise ScenarioError(f"name a scenario file, or a bundled scenario: {names}")
    scenario = load(find(args.scenario))
    if args.register:
        from vigil.db import make_pool, migrate

        if not settings.database_url:
            raise VigilError("--register needs the database: set VIGIL_DATABASE_URL")
        await migrate(settings.database_url)
        async with make_pool(settings.database_url, name="simulate") as pool:
            await register(scenario, pool)
        print(f"registered {len(scenario.devices)} devices of {', '.join(scenario.enterprises)}")
        # Services reload their registry cache on an unknown id at most once a second: after that
        # long, a new device's first message cannot be refused as unknown.
        await asyncio.sleep(REGISTRY_SETTLE_S)
    if args.to:
        n = render_to(scenario, args.to)
        minutes = scenario.duration_s / 60
        print(f"{scenario.name}: {n} messages ({minutes:g} simulated minutes) written to {args.to}")
        return 0
    stats = await publish(scenario, _mqtt_url(settings, args), speed=args.speed)
    print(f"{scenario.name}: {stats.summary()}")
    return 0
