"""Cold-chain temperature rule: a freezer or chiller outside its limits for longer than a duration.

Pure logic, no I/O: feed it readings in order, it returns the violations to emit. Limits come from
the device's registered attributes, so a blast freezer rated -25 °C is judged against its own rating.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vigil.catalogue import violation_type
from vigil.events import Telemetry, Violation, violation_id

DETECTOR = "cold-chain-temperature"
METRIC = "temperature"


@dataclass(frozen=True, slots=True)
class Limits:
    code: str
    min_c: float | None
    max_c: float | None
    duration_s: float
    hysteresis_c: float


# Food-safety limits: frozen food at or below -18 °C, chilled food between 0 and 8 °C.
# 15 minutes tolerates a door opening or a defrost cycle without alarming, but not a failure.
# 0.5 °C of hysteresis keeps a reading hovering at the limit from raising and clearing in turn.
_PROFILE_DEFAULTS: dict[str, Limits] = {
    "freezer": Limits("COLD_CHAIN_FREEZER_WARM", None, -18.0, 900.0, 0.5),
    "chiller": Limits("COLD_CHAIN_CHILLER_OUT_OF_RANGE", 0.0, 8.0, 900.0, 0.5),
}
PROFILES = frozenset(_PROFILE_DEFAULTS)


def limits_for(profile: str, attributes: dict[str, Any]) -> Limits | None:
    base = _PROFILE_DEFAULTS.get(profile)
    if base is None:
        return None

    def num(key: str, default: float | None) -> float | None:
        value = attributes.get(key, default)
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default

    return Limits(
        code=base.code,
        min_c=num("min_temp_c", base.min_c),
        max_c=num("max_temp_c", base.max_c),
        duration_s=num("duration_s", base.duration_s) or base.duration_s,
        hysteresis_c=num("hysteresis_c", base.hysteresis_c) or 0.0,
    )


@dataclass(slots=True)
class _DeviceState:
    last_ts: int = 0
    outside_since: int | None = None  # first reading of the current excursion
    raised_id: str | None = None  # violation id once the excursion lasted long enough
    peak_c: float = 0.0


class ColdChainRule:
    """Raises once an excursion has lasted `duration_s`; clears when the temperature is back
    inside the limits by `hysteresis_c`. One violation id per excursion (its start time), so a
    replay of the same readings reproduces the same id."""

    def __init__(self) -> None:
        self._state: dict[str, _DeviceState] = {}

    def evaluate(self, reading: Telemetry, attributes: dict[str, Any]) -> list[Violation]:
        value = reading.metrics.get(METRIC)
        limits = limits_for(reading.profile, attributes)
        if value is None or limits is None:
            return []
        state = self._state.setdefault(reading.device_id, _DeviceState())
        if reading.ts <= state.last_ts:
            return []  # a late or repeated reading says nothing new about the present
        state.last_ts = reading.ts

        too_warm = limits.max_c is not None and value > limits.max_c
        too_cold = limits.min_c is not None and value < limits.min_c
        if too_warm or too_cold:
            if state.outside_since is None:
                state.outside_since, state.peak_c = reading.ts, value
            state.peak_c = max(state.peak_c, value) if too_warm else min(state.peak_c, value)
            lasted_s = (reading.ts - state.outside_since) / 1000
            if state.raised_id is None and lasted_s >= limits.duration_s:
                return [self._violation(reading, limits, state, value, "active")]
            return []

        back_inside = (limits.max_c is None or value <= limits.max_c - limits.hysteresis_c) and (
            limits.min_c is None or value >= limits.min_c + limits.hysteresis_c
        )
        if not back_inside:
            return []  # inside the limits but within the hysteresis band: the excursion goes on
        emitted = [self._violation(reading, limits, state, value, "cleared")] if state.raised_id else []
        state.outside_since, state.raised_id = None, None
        return emitted

    def _violation(
        self, reading: Telemetry, limits: Limits, state: _DeviceState, value: float, phase: str
    ) -> Violation:
        assert state.outside_since is not None
        kind = violation_type(limits.code)
        vid = violation_id("device", reading.device_id, limits.code, state.outside_since)
        state.raised_id = vid
        bound = (
            f"{limits.min_c:g}–{limits.max_c:g} °C" if limits.min_c is not None else f"≤ {limits.max_c:g} °C"
        )
        lasted = _duration((reading.ts - state.outside_since) / 1000)
        where = reading.device_id
        summary = (
            f"{kind.name_en}: {value:g} °C (limit {bound}) for {lasted} on {where}"
            if phase == "active"
            else f"{kind.name_en} ended: back to {value:g} °C after {lasted} on {where}"
        )
        return Violation(
            violation_id=vid,
            code=limits.code,
            state="active" if phase == "active" else "cleared",
            enterprise_id=reading.enterprise_id,
            site_id=reading.site_id,
            source_kind="device",
            source_id=reading.device_id,
            window_start=state.outside_since,
            detected_at=reading.ts,
            severity=kind.severity,
            detector=DETECTOR,
            summary=summary,
            evidence={
                "metric": METRIC,
                "value": value,
                "peak": state.peak_c,
                "min_c": limits.min_c,
                "max_c": limits.max_c,
                "duration_s": limits.duration_s,
                "outside_since": state.outside_since,
            },
        )


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"
