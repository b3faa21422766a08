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
from datetime import UTC, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from simulators.devices import MODELS, Clock, DeviceModel, Fault, make_device
from simulators.record import PlayStats, Recorded, header, play, write_recording
from vigil.errors import VigilError
from vigil.events import ID_PATTERN
from vigil.topics import MQTT_PREFIX

SCENARIOS_DIR: Final = Path(__file__).parent / "scenarios"
REGISTRY_SETTLE_S: Final = 1.1  # CachedTable's miss_refresh_s (1 s), and a little
_UNITS: Final = {"s": 1.0, "min": 60.0, "h": 3600.0}
_TOP_KEYS: Final = frozenset(
    {"name", "description", "speed", "seed", "timezone", "start", "enterprise", "sites", "devices", "faults"}
    | {f"duration_{u}" for u in _UNITS}
)
_DEVICE_KEYS: Final = frozenset({"id", "type", "profile", "site", "attributes", "model"})
_FAULT_KEYS: Final = frozenset({"device", "fault"} | {f"{w}_{u}" for w in ("at", "for") for u in _UNITS})


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
            make_device(
                d.profile,
                d.device_id,
                seed=f"{self.seed}/{d.key or d.device_id}",
                attributes=d.attributes,
                options=d.options,
                faults=d.faults,
                clock=clock,
            )
            for d in self.devices
        ]

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


def _mapping(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ScenarioError(f"{what} must be a mapping of name: value, got {type(value).__name__}")
    return value


def _id(value: Any, what: str) -> str:
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise ScenarioError(f"{what} must be an id of 1-64 characters of A-Z a-z 0-9 _ -, got {value!r}")
    return value


def _number(value: Any, what: str, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ScenarioError(f"{what} must be a number, got {value!r}")
    if value < 0 or (positive and value == 0):
        raise ScenarioError(f"{what} must be {'above' if positive else 'at least'} 0, got {value:g}")
    return float(value)


def _seconds(obj: Mapping[str, Any], word: str, what: str, *, required: bool) -> float | None:
    """`word_s`, `word_min` or `word_h` of `obj`, in seconds (exactly one, if required)."""
    given = [(f"{word}_{u}", scale) for u, scale in _UNITS.items() if f"{word}_{u}" in obj]
    if len(given) > 1:
        raise ScenarioError(f"{what}: give one of {', '.join(k for k, _ in given)}, not several")
    if not given:
        if required:
            raise ScenarioError(f"{what}: needs {word}_min (or {word}_s, {word}_h)")
        return None
    key, scale = given[0]
    return _number(obj[key], f"{what}: {key}") * scale


def _enterprise(value: Any, what: str) -> tuple[str, str]:
    if isinstance(value, str):
        return _id(value, what), value
    e = _mapping(value, what)
    if unknown := set(e) - {"id", "name"}:
        raise ScenarioError(f"{what}: unknown keys {sorted(unknown)}; allowed: id, name")
    ident = _id(e.get("id"), f"{what}.id")
    return ident, str(e.get("name") or ident)


_START = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?")


def parse(doc: Any, *, default_name: str = "scenario", path: Path | None = None) -> Scenario:
    """A Scenario from a parsed YAML document (a ScenarioError names the offending entry)."""
    top = _mapping(doc, "a scenario")
    if unknown := set(top) - _TOP_KEYS:
        raise ScenarioError(f"unknown keys {sorted(unknown)}; allowed: {', '.join(sorted(_TOP_KEYS))}")
    duration = _seconds(top, "duration", "the scenario", required=True)
    assert duration is not None
    if duration <= 0:
        raise ScenarioError("the scenario's duration must be above 0")
    speed = _number(top.get("speed", 60), "speed", positive=True)
    seed = top.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ScenarioError(f"seed must be an integer, got {seed!r}")
    try:
        zone: tzinfo = ZoneInfo(str(top.get("timezone", "UTC")))
    except (ZoneInfoNotFoundError, ValueError):
        raise ScenarioError(
            f"unknown timezone {top.get('timezone')!r}; use an IANA name such as Asia/Shanghai"
        ) from None
    start = None
    if "start" in top:
        raw = top["start"]
        match = _START.fullmatch(raw) if isinstance(raw, str) else None
        if match is None:
            hint = " (quote it: unquoted, YAML reads 21:30 as a number)" if isinstance(raw, int) else ""
            raise ScenarioError(f'start must be a time of day such as "21:30", got {raw!r}{hint}')
        start = time(int(match[1]), int(match[2]), int(match[3] or 0))

    default_enterprise = _enterprise(top["enterprise"], "enterprise") if "enterprise" in top else None
    sites: dict[str, SiteSpec] = {}
    raw_sites = top.get("sites") or []
    if not isinstance(raw_sites, list):
        raise ScenarioError("sites must be a list")
    for i, raw in enumerate(raw_sites):
        s = _mapping(raw, f"sites[{i}]")
        if unknown := set(s) - {"id", "name", "enterprise"}:
            raise ScenarioError(f"sites[{i}]: unknown keys {sorted(unknown)}; allowed: id, name, enterprise")
        site_id = _id(s.get("id"), f"sites[{i}].id")
        if site_id in sites:
            raise ScenarioError(f"sites[{i}]: site {site_id!r} is declared twice")
        ent = (
            _enterprise(s["enterprise"], f"sites[{i}].enterprise")
            if "enterprise" in s
            else default_enterprise
        )
        if ent is None:
            raise ScenarioError(
                f"sites[{i}]: no enterprise (give the scenario an `enterprise`, or the site one)"
            )
        sites[site_id] = SiteSpec(site_id, str(s.get("name") or site_id), *ent)

    raw_devices = top.get("devices")
    if not isinstance(raw_devices, list) or not raw_devices:
        raise ScenarioError("devices must be a non-empty list")
    specs: dict[str, DeviceSpec] = {}
    for i, raw in enumerate(raw_devices):
        d = _mapping(raw, f"devices[{i}]")
        if unknown := set(d) - _DEVICE_KEYS:
            raise ScenarioError(
                f"devices[{i}]: unknown keys {sorted(unknown)}; allowed: {', '.join(sorted(_DEVICE_KEYS))}"
            )
        device_id = _id(d.get("id"), f"devices[{i}].id")
        what = f"device {device_id}"
        if device_id in specs:
            raise ScenarioError(f"{what} is declared twice")
        profile = d.get("type", d.get("profile"))
        if profile not in MODELS:
            raise ScenarioError(
                f"{what}: unknown type {profile!r}; expected one of {', '.join(sorted(MODELS))}"
            )
        if "site" in d:
            if d["site"] not in sites:
                raise ScenarioError(
                    f"{what}: unknown site {d['site']!r}; sites are: {', '.join(sites) or 'none'}"
                )
            site = sites[d["site"]]
        elif len(sites) == 1:
            site = next(iter(sites.values()))
        else:
            raise ScenarioError(f"{what}: which site? give `site` (sites are: {', '.join(sites) or 'none'})")
        specs[device_id] = DeviceSpec(
            device_id, str(profile), site, _mapping(d.get("attributes"), f"{what}: attributes"),
            _mapping(d.get("model"), f"{what}: model"), key=device_id,
        )  # fmt: skip

    faults: dict[str, list[Fault]] = {k: [] for k in specs}
    raw_faults = top.get("faults") or []
    if not isinstance(raw_faults, list):
        raise ScenarioError("faults must be a list")
    for i, raw in enumerate(raw_faults):
        f = _mapping(raw, f"faults[{i}]")
        target, kind = f.get("device"), f.get("fault")
        what = f"faults[{i}] ({kind} on {target})"
        if not isinstance(target, str) or target not in specs:
            raise ScenarioError(f"faults[{i}]: unknown device {target!r}; devices are: {', '.join(specs)}")
        spec = specs[target]
        known = MODELS[spec.profile].fault_specs()
        if not isinstance(kind, str) or kind not in known:  # a list or mapping is unhashable
            raise ScenarioError(
                f"faults[{i}]: unknown fault {kind!r} for {target} (a {spec.profile}); "
                f"its faults are: {', '.join(sorted(known))}"
            )
        at = _seconds(f, "at", what, required=True)
        lasting = known[kind].lasting
        length = _seconds(f, "for", what, required=lasting)
        assert at is not None
        if not lasting and length is not None:
            raise ScenarioError(f"{what}: {kind} happens once; it takes no for_min")
        if at > duration:
            raise ScenarioError(
                f"{what}: starts at {at / 60:g} min, after the scenario's end ({duration / 60:g} min)"
            )
        if lasting and not length:
            raise ScenarioError(f"{what}: its duration must be above 0")
        params = {k: v for k, v in f.items() if k not in _FAULT_KEYS}
        faults[target].append(Fault(str(kind), at, at + (length or 0.0), params))

    devices = tuple(replace(spec, faults=tuple(faults[k])) for k, spec in specs.items())
    scenario = Scenario(
        name=str(top.get("name") or default_name), duration_s=duration, devices=devices,
        description=str(top.get("description") or "").strip(), speed=speed, seed=seed, timezone=zone,
        start=start, path=path,
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
