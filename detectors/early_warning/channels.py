"""What the early warning watches: one `Channel` per metric and limit rule, and the time base.

A channel turns a reading into a margin (the distance to the limit on the safe side, scaled), so one
model serves a freezer's temperature and a boiler's pressure alike. The limits are the rules' own:
a device's attribute first, then its profile file's default (`profile_defaults`), then the value
of `docs/devices.md`, so the warning forecasts exactly the rule that would fire.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

WINDOW_MIN: Final = 30  # minutes of history a row looks at
MIN_POINTS: Final = 10  # minutes with a reading needed before a metric is scored
MINUTE_MS: Final = 60_000


@dataclass(frozen=True, slots=True)
class Channel:
    """One watched metric of a profile and the limit rule it forecasts.

    The margin is the distance to the limit on the safe side, divided by `scale` (times the limit
    when `relative`): about 1 in normal operation, 0 at the limit, negative beyond it."""

    name: str
    profile: str
    metric: str
    rule: str  # the catalogue code of the rule the label is about
    limit_attr: str
    limit_default: float  # docs/devices.md; the profile file's default wins when there is one
    direction: Literal["above", "below"]  # the rule fires above (below) the limit
    scale: float
    relative: bool
    valid: tuple[float, float]  # the physically possible range: other readings are ignored
    hold_attr: str | None  # the attribute of the rule's hold time, if it has one
    hold_default_s: float

    def limit(self, attributes: Mapping[str, Any], defaults: Mapping[str, float]) -> float:
        return _number(attributes.get(self.limit_attr), defaults.get(self.limit_attr, self.limit_default))

    def hold_s(self, attributes: Mapping[str, Any], defaults: Mapping[str, float]) -> float:
        if self.hold_attr is None:
            return self.hold_default_s
        return _number(attributes.get(self.hold_attr), defaults.get(self.hold_attr, self.hold_default_s))

    def span(self, limit: float) -> float:
        return max(abs(limit) * self.scale, 1e-6) if self.relative else self.scale


CHANNELS: Final[tuple[Channel, ...]] = (
    Channel("freezer.temperature", "freezer", "temperature", "COLD_CHAIN_FREEZER_WARM",
            "max_temp_c", -18.0, "above", 4.0, False, (-60.0, 60.0), "duration_s", 900.0),
    Channel("chiller.temperature", "chiller", "temperature", "COLD_CHAIN_CHILLER_OUT_OF_RANGE",
            "max_temp_c", 8.0, "above", 4.5, False, (-60.0, 60.0), "duration_s", 900.0),
    Channel("boiler.pressure", "boiler", "pressure_mpa", "BOILER_OVER_PRESSURE",
            "rated_pressure_mpa", 1.25, "above", 0.2, True, (0.0, 10.0), None, 10.0),
    Channel("boiler.water_level", "boiler", "water_level_mm", "BOILER_LOW_WATER",
            "min_water_level_mm", 50.0, "below", 70.0, False, (-500.0, 1000.0), None, 10.0),
    Channel("boiler.temperature", "boiler", "temperature_c", "BOILER_OVER_TEMPERATURE",
            "max_temperature_c", 194.0, "above", 10.0, False, (0.0, 400.0), None, 30.0),
    Channel("pressure_vessel.pressure", "pressure_vessel", "pressure_mpa", "PRESSURE_VESSEL_OVER_PRESSURE",
            "rated_pressure_mpa", 1.6, "above", 0.375, True, (0.0, 40.0), None, 10.0),
)  # fmt: skip
PROFILES: Final = tuple(dict.fromkeys(c.profile for c in CHANNELS))
DOOR_PROFILES: Final = frozenset({"freezer", "chiller"})


def _number(value: Any, default: float) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return float(default)


def profile_defaults() -> dict[str, dict[str, float]]:
    """The default attributes of each profile file (`detectors/profiles/`), as the rules use them."""
    from detectors.rules import load_profiles

    return {name: dict(p.attributes) for name, p in load_profiles().items() if name in PROFILES}


def profile_units() -> dict[str, dict[str, str]]:
    """The unit of each metric of each profile file, for the warning's summary (vigil.summaries)."""
    from detectors.rules import load_profiles

    return {
        name: {m.name: m.unit for m in p.metrics.values()}
        for name, p in load_profiles().items()
        if name in PROFILES
    }
