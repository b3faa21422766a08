"""The two violations every device of a known profile gets, whatever its rules: DEVICE_OFFLINE
(status offline, the MQTT last will, or no message for the profile's heartbeat) and
SENSOR_OUT_OF_RANGE (a physically impossible value). Their episodes live on `DeviceState` itself,
not in a `RuleState`. The engine decides when (see `RuleEngine.feed` and `tick`); these emit."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from detectors.rules.rule import duration, unit_suffix
from detectors.rules.state import DeviceState
from vigil.catalogue import violation_type
from vigil.events import Telemetry, violation_id

if TYPE_CHECKING:
    from detectors.rules.engine import RuleEngine

OFFLINE = "DEVICE_OFFLINE"
OUT_OF_RANGE = "SENSOR_OUT_OF_RANGE"


# --- DEVICE_OFFLINE ---------------------------------------------------------------------------------


def offline(engine: RuleEngine, dev: DeviceState, since: int, at: int, why: str) -> None:
    dev.offline_id = violation_id("device", dev.device_id, OFFLINE, since)
    dev.offline_since = since
    kind = violation_type(OFFLINE)
    hb = dev.program.heartbeat_ms
    summary = (
        f"{kind.name_en}: no message for {duration(hb)}" if why == "no message" else f"{kind.name_en}: {why}"
    )
    evidence = {
        "rule": "offline",
        "reason": why,
        "last_message": dev.last_received,
        "heartbeat_s": hb / 1000,
        # The figures of the summary people read (vigil.summaries): silence, or the device's word.
        "params": {"variant": "no_message", "heartbeat_s": hb / 1000}
        if why == "no message"
        else {"variant": "status"},
    }
    engine.emit(dev, OFFLINE, dev.offline_id, "active", since, at, kind.severity, summary, evidence)


def online(engine: RuleEngine, dev: DeviceState, at: int, why: str) -> None:
    assert dev.offline_id is not None
    kind = violation_type(OFFLINE)
    vid, since = dev.offline_id, dev.offline_since
    summary = f"{kind.name_en} ended: {why} after {duration(max(0, at - since))}"
    evidence = {"rule": "offline", "reason": why, "offline_since": since}
    engine.emit(dev, OFFLINE, vid, "cleared", since, at, kind.severity, summary, evidence)
    dev.offline_id = None


# --- SENSOR_OUT_OF_RANGE ----------------------------------------------------------------------------


def out_of_range(
    engine: RuleEngine, dev: DeviceState, msg: Telemetry, bad: dict[str, float] | None, ts: int
) -> None:
    """One SENSOR_OUT_OF_RANGE episode per device: raised by the first impossible value, ended
    when every metric that had one has been reported possible again."""
    kind = violation_type(OUT_OF_RANGE)
    if bad is not None:
        if dev.range_id is None:
            dev.range_id = vid = violation_id("device", dev.device_id, OUT_OF_RANGE, ts)
            dev.range_since, dev.range_bad = ts, dict(bad)
            summary = f"{kind.name_en}: {_impossible(dev, bad)}"
            evidence = {
                "rule": "valid_range",
                "readings": dict(bad),
                "valid": {m: list(dev.program.ranges[m]) for m in bad},
                "params": _range_params(dev, bad),
            }
            engine.emit(dev, OUT_OF_RANGE, vid, "active", ts, ts, kind.severity, summary, evidence)
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
        engine.emit(
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


def _range_params(dev: DeviceState, bad: Mapping[str, float]) -> dict[str, object]:
    """The first impossible reading, for the summary people read (vigil.summaries)."""
    metric, value = next(iter(bad.items()))
    low, high = dev.program.ranges[metric]
    return {
        "metric": metric,
        "value": value,
        "min": low,
        "max": high,
        "unit": dev.program.units.get(metric, ""),
    }


def _impossible(dev: DeviceState, bad: Mapping[str, float]) -> str:
    ranges, units = dev.program.ranges, dev.program.units
    return ", ".join(
        f"{m} {x:g}{unit_suffix(units[m])} outside {ranges[m][0]:g} … {ranges[m][1]:g}"
        for m, x in bad.items()
    )
