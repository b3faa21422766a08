"""Scenario files: the bundled ones load and cover every equipment type, mistakes are refused
with a message that says where, rendering is reproducible, and the clock never stamps a message
in the future of its publication, whatever the speed."""

from __future__ import annotations

import math
import textwrap
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from shell.cli import main
from simulators.devices import MODELS, Clock
from simulators.record import read_recording
from simulators.scenario import (
    Scenario,
    ScenarioError,
    bundled,
    describe_faults,
    find,
    load,
    parse,
    publish,
    register,
    render_to,
)
from tests.helpers import MqttTail
from vigil.kafka import now_ms

MINIMAL: dict[str, Any] = {
    "duration_min": 30,
    "enterprise": {"id": "ent-1", "name": "Ent"},
    "sites": [{"id": "site-1"}],
    "devices": [
        {"id": "freezer-1", "type": "freezer"},
        {"id": "elevator-1", "type": "elevator", "attributes": {"top_m": 30}},
    ],
    "faults": [{"at_min": 5, "device": "freezer-1", "fault": "door_left_open", "for_min": 12}],
}


def scenario(**changes: Any) -> Scenario:
    return parse({**MINIMAL, **changes})


def write(tmp_path: Path, doc: dict[str, Any], name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


# -- the bundled scenarios ------------------------------------------------------------------------


def test_bundled_scenarios_load_and_cover_every_equipment_type() -> None:
    scenarios = {p.stem: load(p) for p in bundled()}
    normal = scenarios.pop("normal-operation")
    assert {d.profile for d in normal.devices} == set(MODELS)
    assert not any(d.faults for d in normal.devices) and normal.duration_s == 86_400
    faulty = {d.profile for s in scenarios.values() for d in s.devices if d.faults}
    assert faulty == set(MODELS), "a scenario with a fault for every equipment type"
    for name, s in scenarios.items():
        assert s.name == name and s.description and s.start is not None


def test_find_by_name_or_path(tmp_path: Path) -> None:
    assert find("freezer").name == "freezer.yaml"
    path = write(tmp_path, MINIMAL)
    assert find(str(path)) == path
    with pytest.raises(ScenarioError, match=r"no scenario 'nope'.*normal-operation"):
        find("nope")


# -- validation -----------------------------------------------------------------------------------


def fault(**entry: Any) -> dict[str, Any]:
    """MINIMAL's faults replaced by one: a good door_left_open, but for what `entry` changes (None
    removes a key)."""
    base = {"at_min": 5, "device": "freezer-1", "fault": "door_left_open", "for_min": 1}
    return {"faults": [{k: v for k, v in {**base, **entry}.items() if v is not None}]}


def device(**entry: Any) -> dict[str, Any]:
    """MINIMAL's devices replaced by one freezer `x` (and no faults), but for what `entry` changes."""
    return {"devices": [{"id": "x", "type": "freezer", **entry}], "faults": []}


STUCK = {"device": "elevator-1", "fault": "stuck_between_floors"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (fault(device="freezer-9"),
         r"faults\[0\]\.device: unknown device 'freezer-9'; devices are: freezer-1, elev"),
        (fault(fault="meltdown"),
         r"faults\[0\]\.fault: unknown fault 'meltdown' for freezer-1 \(a freezer\); its faults are: compr"),
        (fault(at_min=-5), r"faults\[0\]\.at_min: expected a number of at least 0, got -5"),
        (fault(for_min=-1), r"faults\[0\]\.for_min: expected a number greater than 0, got -1"),
        (fault(for_min=0), r"faults\[0\]\.for_min: expected a number greater than 0, got 0"),
        (fault(at_min=31), r"starts at 31 min, after the scenario's end \(30 min\)"),
        (fault(for_min=None), r"faults\[0\]: needs for_min \(or for_s, for_h\)"),
        (fault(at_s=5), r"faults\[0\]: give one of at_s, at_min, not several"),
        (fault(device="elevator-1", fault="overspeed"), r"overspeed happens once; it takes no for_min"),
        (fault(**STUCK, passenger="yes"), r"passenger must be true or false"),
        (fault(**STUCK, victims=2), r"unknown 'victims'; allowed: passenger"),
        ({"duration_min": -1}, r"duration_min: expected a number greater than 0, got -1"),
        ({"duration_min": 0}, r"duration_min: expected a number greater than 0, got 0"),
        ({"speed": 0}, r"speed: expected a number greater than 0, got 0"),
        ({"start": 1290}, r'start: expected a time of day such as "21:30", got 1290 \(quote it'),
        ({"start": "25:00"}, r"start: expected a time of day such as \"21:30\", got '25:00'"),
        ({"timezone": "Mars/Olympus"}, r"unknown timezone 'Mars/Olympus'"),
        ({"colour": "red"}, r"unknown keys \['colour'\]"),
        ({"devices": []}, r"devices: expected a non-empty list, got \[\]"),
        (device(type="toaster"), r"devices\[0\]\.type: unknown type 'toaster'; expected one of boiler,"),
        (device(site="site-2"), r"devices\[0\]\.site: unknown site 'site-2'; sites are: site-1"),
        ({"devices": [{"id": "x", "type": "freezer"}] * 2}, r"devices\[1\]\.id: device x is declared twice"),
        (device(id="bad id"),
         r"devices\[0\]\.id: expected an id of 1-64 characters of A-Z a-z 0-9 _ -, got 'bad id'"),
        (device(type=[]), r"devices\[0\]\.type: expected a string, got \[\]"),
        (device(site=["site-1"]), r"devices\[0\]\.site: expected a string, got \['site-1'\]"),
        (device(attributes={1: 2}), r"devices\[0\]\.attributes\[1\]: expected a string key, got 1"),
        (device(colour="red"), r"devices\[0\]: unknown keys \[.colour.\] for a device; expected some of"),
        ({"faults": [None]}, r"faults\[0\]: expected a mapping, got None"),
        ({"enterprise": {"id": "e", "nom": "E"}}, r"enterprise: unknown keys \['nom'\] for an enterprise"),
        (device(model={"setpoint_c": "cold"}), r"setpoint_c must be a number"),
        (device(model={"fan": 1}), r"x \(freezer\): unknown 'fan'"),
    ],
)  # fmt: skip
def test_mistakes_are_refused_saying_where(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        scenario(**change)


def test_a_file_error_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, {**MINIMAL, "speed": "fast"}, "fast.yaml")
    with pytest.raises(ScenarioError, match=r"fast.yaml: speed: expected a number, got 'fast'"):
        load(path)
    (tmp_path / "bad.yaml").write_text("devices: [", encoding="utf-8")
    with pytest.raises(ScenarioError, match="not valid YAML"):
        load(tmp_path / "bad.yaml")
    with pytest.raises(ScenarioError, match="cannot read"):
        load(tmp_path / "missing.yaml")


def test_units_sites_and_defaults() -> None:
    s = parse_without("duration_min", duration_h=1, start="21:30", timezone="Asia/Shanghai")
    assert s.duration_s == 3600 and s.start == time(21, 30) and str(s.timezone) == "Asia/Shanghai"
    [site] = s.sites
    assert (site.site_id, site.name, site.enterprise_id, site.enterprise_name) == (
        "site-1",
        "site-1",
        "ent-1",
        "Ent",
    )
    fault = s.devices[0].faults[0]
    assert (fault.kind, fault.start_s, fault.end_s) == ("door_left_open", 300, 1020)
    assert s.devices[0].topic("telemetry") == "vigil/v1/ent-1/freezer-1/telemetry"


def parse_without(key: str, **changes: Any) -> Scenario:
    doc = {**MINIMAL, **changes}
    doc.pop(key)
    return parse(doc)


def test_an_enterprise_by_id_and_a_device_by_profile() -> None:
    s = parse(
        {**MINIMAL, "enterprise": "ent-2", "devices": [{"id": "x", "profile": "freezer"}], "faults": []}
    )
    [d] = s.devices
    assert (d.profile, d.site.enterprise_id, d.site.enterprise_name) == ("freezer", "ent-2", "ent-2")


def test_duration_is_required() -> None:
    with pytest.raises(ScenarioError, match="needs duration_min"):
        parse_without("duration_min")


# -- rendering and time ------------------------------------------------------------------------


def test_render_is_reproducible_ordered_and_stamped_from_the_clock() -> None:
    s = scenario()
    clock = Clock(datetime(2026, 1, 5, 9, tzinfo=UTC))
    a, b = list(s.render(clock)), list(s.render(clock))
    assert a == b
    assert [r.t_s for r in a] == sorted(r.t_s for r in a)
    assert all(0 <= r.t_s <= s.duration_s for r in a)
    stamped = [(r.t_s, orjson.loads(r.payload)) for r in a if r.payload != b"offline"]
    assert all(p["ts"] == clock.start_ms + round(t * 1000) for t, p in stamped)
    kinds = {r.topic.rsplit("/", 1)[1] for r in a}
    assert kinds == {"telemetry", "event", "status"}
    # Another seed, other traffic; the same seed under other ids, the same traffic.
    assert [r.payload for r in scenario(seed=9).render(clock)] != [r.payload for r in a]
    renamed = list(s.with_suffix("abc").render(clock))
    assert [r.payload for r in renamed] == [r.payload for r in a]
    assert {r.topic.split("/")[2] for r in renamed} == {"ent-1-abc"}
    assert {r.topic.split("/")[3] for r in renamed} == {"freezer-1-abc", "elevator-1-abc"}


@pytest.mark.parametrize("speed", [0.5, 1.0, 7.0, 60.0, 1440.0, math.inf])
@pytest.mark.parametrize("start", [None, "21:30"])
def test_no_message_is_stamped_in_the_future_of_its_publication(speed: float, start: str | None) -> None:
    s = parse_without(
        "duration_min", duration_h=3, timezone="Asia/Shanghai", **({"start": start} if start else {})
    )
    now = datetime(2026, 6, 1, 12, 0, 7, tzinfo=UTC)
    clock = s.clock(now=now, speed=speed)
    if start is not None:
        assert clock.start.time() == time(21, 30) and clock.start.tzinfo == s.timezone
    for t in (0.0, 1.0, s.duration_s / 2, s.duration_s):
        published = now + timedelta(seconds=t / speed if math.isfinite(speed) else 0)
        assert clock.start + timedelta(seconds=t) <= published
    # ... and as recent as that allows (within a day, for a time-of-day start).
    slack = timedelta(days=1) if start else timedelta(seconds=1)
    assert now - clock.start <= timedelta(seconds=s.duration_s * max(0, 1 - 1 / speed)) + slack


def test_render_to_a_recording(tmp_path: Path) -> None:
    s = scenario()
    before = now_ms()
    n = render_to(s, tmp_path / "r.jsonl")
    head, records = read_recording(tmp_path / "r.jsonl")
    assert n == len(records) > 100
    assert head["format"] == "vigil-recording" and head["scenario"] == s.name and head["duration_s"] == 1800
    stamps = [orjson.loads(r.payload)["ts"] for r in records]
    assert max(stamps) <= before + 1000  # rendered in the past: a replay at any speed is never early


def test_every_fault_is_described() -> None:
    text = describe_faults()
    for model in MODELS.values():
        for kind in model.fault_specs():
            assert kind in text


def test_cli_renders_and_lists_faults(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--faults"]) == 0
    assert "stuck_between_floors" in capsys.readouterr().out
    out = tmp_path / "freezer.jsonl"
    assert main(["simulate", "freezer", "--to", str(out)]) == 0
    assert "written to" in capsys.readouterr().out and read_recording(out)[1]
    assert main(["simulate", str(write(tmp_path, {**MINIMAL, "speed": "x"}))]) == 2
    assert "s.yaml: speed: expected a number, got 'x'" in capsys.readouterr().err


# -- against the real broker and database ----------------------------------------------------------


async def test_publish_registers_and_sends_everything_never_early(settings: Any, pool: Any, uid: str) -> None:
    s = parse(
        yaml.safe_load(
            textwrap.dedent(f"""
            duration_min: 20
            speed: 600
            enterprise: {{id: ent-{uid}, name: Sim}}
            sites: [{{id: site-{uid}}}]
            devices:
              - {{id: boiler-{uid}, type: boiler, attributes: {{rated_pressure_mpa: 1.25}}}}
              - {{id: vessel-{uid}, type: pressure_vessel}}
            faults:
              - {{at_min: 5, device: vessel-{uid}, fault: safety_valve_lift}}
            """)
        )
    )
    await register(s, pool)
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT device_id, profile, attributes FROM devices WHERE site_id = %s ORDER BY 1",
            (f"site-{uid}",),
        )
        rows = await cur.fetchall()
    assert rows == [
        (f"boiler-{uid}", "boiler", {"rated_pressure_mpa": 1.25}),
        (f"vessel-{uid}", "pressure_vessel", {}),
    ]

    async with MqttTail(settings.mqtt_url, f"vigil/v1/ent-{uid}/#") as tail:
        stats = await publish(s, settings.mqtt_url)
        assert 1.5 <= stats.wall_s < 10  # 20 simulated minutes at ×600: about two seconds
        received: list[tuple[str, bytes, int]] = []
        while len(received) < stats.sent:
            topic, payload = await tail.next(timeout=10)
            received.append((topic, payload, now_ms()))
    assert stats.by_source[(f"vessel-{uid}", "event")] == 1
    for topic, payload, at in received:
        assert orjson.loads(payload)["ts"] <= at, f"{topic} stamped in the future"
