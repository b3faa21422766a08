"""A steam boiler: a burner holding the drum pressure in a band, a feed pump holding the water level
in a band, and the water at the saturation temperature of its pressure.

The steam load follows the day (a laundry or a canteen kitchen: low at night, high from morning
to evening); at high load the pressure sags and saws faster and the level falls faster between
feeds. At the default 1.0 MPa working pressure the water is at about 184 °C, under the 194 °C
alarm; 194 °C is what saturated water reaches at just over the 1.25 MPa rating, so an
over-pressure also shows as an over-temperature.

Faults: `low_water` (the feed pump stops: the level falls with the evaporation), `pressure_creep`
(the burner control sticks on: the pressure climbs to `to_mpa` and stays), `over_temperature`
(the drum runs hot: dry firing, a stuck sensor pocket).
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any, ClassVar

from simulators.devices.base import FaultSpec, Message, Param, SampledModel, bumps

# Saturated water: absolute pressure (MPa) -> temperature (°C), from the steam tables.
_SATURATION = (
    (0.1, 99.6), (0.2, 120.2), (0.4, 143.6), (0.6, 158.8), (0.8, 170.4), (1.0, 179.9), (1.2, 188.0),
    (1.4, 195.0), (1.6, 201.4), (1.8, 207.1), (2.0, 212.4), (2.5, 224.0), (3.0, 233.9), (4.0, 250.4),
    (6.0, 275.6), (10.0, 311.0),
)  # fmt: skip
ATMOSPHERE_MPA = 0.101


def saturation_c(gauge_mpa: float) -> float:
    """Temperature of saturated water at a gauge pressure, interpolated in the steam table."""
    p = min(max(gauge_mpa + ATMOSPHERE_MPA, _SATURATION[0][0]), _SATURATION[-1][0])
    i = max(1, bisect_left([row[0] for row in _SATURATION], p))
    (p0, t0), (p1, t1) = _SATURATION[i - 1], _SATURATION[i]
    return t0 + (t1 - t0) * (p - p0) / (p1 - p0)


class Boiler(SampledModel):
    profile: ClassVar[str] = "boiler"
    interval_s: ClassVar[float] = 10.0
    primary_metric: ClassVar[str | None] = "pressure_mpa"
    TICK_S: ClassVar[float] = 1.0
    OPTIONS: ClassVar[dict[str, Param]] = {
        "working_pressure_mpa": Param("number", 1.0, minimum=0.1, maximum=8.0),
        "level_mm": Param("number", 120.0, minimum=0, maximum=800, help="middle of the feed band"),
    }
    FAULTS: ClassVar[dict[str, FaultSpec]] = {
        "low_water": FaultSpec(
            "the feed pump stops: the water level falls with the evaporation",
            {"rate_mm_per_min": Param("number", 4.0, minimum=0.1, maximum=200)},
        ),
        "pressure_creep": FaultSpec(
            "the burner control sticks on: the pressure climbs to to_mpa and stays there",
            {
                "to_mpa": Param("number", 1.4, minimum=0, maximum=10),
                "ramp_min": Param("number", 10.0, minimum=0.1, maximum=600),
            },
        ),
        "over_temperature": FaultSpec(
            "the drum runs hot (dry firing): the temperature climbs to to_c",
            {
                "to_c": Param("number", 215.0, minimum=0, maximum=400),
                "ramp_min": Param("number", 5.0, minimum=0.1, maximum=600),
            },
        ),
    }

    def __init__(self, device_id: str, **kwargs: Any) -> None:
        super().__init__(device_id, **kwargs)
        self.working = float(self.options["working_pressure_mpa"])
        self.level_mid = float(self.options["level_mm"])
        self.pressure = self.working + self.rng.uniform(-0.08, 0.04)
        self.level = self.level_mid + self.rng.uniform(-30, 30)
        self.temperature = saturation_c(self.pressure)
        self.burner = self.rng.random() < 0.5
        self.feeding = False
        self._creep_from: float | None = None
        self._hot_from: float | None = None

    def load(self, t: float) -> float:
        """Steam demand, 0..1: a night base, the working day, a lunchtime peak."""
        h = self.clock.hour(t)
        return min(1.0, 0.2 + bumps(h, [(13.0, 3.5, 0.5), (12.0, 1.0, 0.2), (18.5, 1.2, 0.15)]))

    def _tick(self, t: float, dt: float) -> list[Message]:
        load = self.load(t)
        creep = self.active("pressure_creep", t)
        if creep is not None:
            if self._creep_from is None:
                self._creep_from = self.pressure
            done = min(1.0, (t - creep.start_s) / (creep.params["ramp_min"] * 60))
            self.pressure = self._creep_from + (creep.params["to_mpa"] - self._creep_from) * done
            self.burner = True
        else:
            self._creep_from = None
            # On/off burner in a band around the working pressure; the load drains it.
            if self.pressure < self.working - 0.08:
                self.burner = True
            elif self.pressure > self.working + 0.05:
                self.burner = False
            rise = 0.0012 if self.burner else 0.0
            self.pressure += (rise - 0.0007 * (0.3 + load)) * dt
            self.pressure = max(0.0, self.pressure)

        # The feed pump keeps the level in its band, unless it has failed.
        low = self.active("low_water", t)
        if self.level < self.level_mid - 35:
            self.feeding = True
        elif self.level > self.level_mid + 35:
            self.feeding = False
        evaporation = (0.5 + 2.5 * load) / 60  # mm/s
        if low is not None:
            evaporation = low.params["rate_mm_per_min"] / 60
        feed = 6.0 / 60 if self.feeding and low is None else 0.0
        self.level = max(-450.0, self.level + (feed - evaporation) * dt)

        hot = self.active("over_temperature", t)
        if hot is not None:
            if self._hot_from is None:
                self._hot_from = self.temperature
            done = min(1.0, (t - hot.start_s) / (hot.params["ramp_min"] * 60))
            self.temperature = self._hot_from + (hot.params["to_c"] - self._hot_from) * done
        else:
            self._hot_from = None
            # The water follows the saturation temperature with a minute or so of lag.
            self.temperature += (saturation_c(self.pressure) - self.temperature) * min(1.0, dt / 60)
        return []

    def _sample(self, t: float) -> dict[str, float]:
        return {
            "pressure_mpa": round(max(0.0, self.pressure + self.rng.gauss(0, 0.004)), 3),
            "water_level_mm": round(self.level + self.rng.gauss(0, 3.0), 1),  # a boiling surface
            "temperature_c": round(self.temperature + self.rng.gauss(0, 0.3), 1),
        }
