"""A compressed-air receiver: a compressor loads below the cut-in pressure and unloads at the
cut-out, while the workshop draws air (more by day). The pressure saws between the two, every
minute or two by day, every few minutes at night, far below the vessel's rating.

The safety valve is set above the rating (`valve_set_mpa`, default 1.1 × the rated pressure, as
a receiver's valve is set at or under its design pressure): when the pressure reaches it the valve
lifts (`safety_valve_lift`) and blows down about 7 % before it reseats.

Faults: `pressure_creep` (the unloader sticks: the pressure climbs at `rate_mpa_per_min` until the
valve lifts, again and again, until the fault ends) and `safety_valve_lift` (a spurious lift, a
valve weeping at a pressure far below its set point).
"""

from __future__ import annotations

from typing import Any, ClassVar

from simulators.devices.base import FaultSpec, Message, Param, SampledModel, bumps, event

BLOWDOWN = 0.07


class PressureVessel(SampledModel):
    profile: ClassVar[str] = "pressure_vessel"
    interval_s: ClassVar[float] = 10.0
    primary_metric: ClassVar[str | None] = "pressure_mpa"
    TICK_S: ClassVar[float] = 1.0
    OPTIONS: ClassVar[dict[str, Param]] = {
        "cut_in_mpa": Param("number", 0.8, minimum=0.05, maximum=30),
        "cut_out_mpa": Param("number", 1.0, minimum=0.1, maximum=35),
        "valve_set_mpa": Param("number", minimum=0.1, maximum=40),
    }
    FAULTS: ClassVar[dict[str, FaultSpec]] = {
        "pressure_creep": FaultSpec(
            "the compressor never unloads: the pressure climbs until the safety valve lifts",
            {"rate_mpa_per_min": Param("number", 0.03, minimum=0.001, maximum=5)},
        ),
        "safety_valve_lift": FaultSpec("the safety valve lifts (spuriously) once", lasting=False),
    }

    def __init__(self, device_id: str, **kwargs: Any) -> None:
        super().__init__(device_id, **kwargs)
        self.cut_in = float(self.options["cut_in_mpa"])
        self.cut_out = float(self.options["cut_out_mpa"])
        if self.cut_out <= self.cut_in:
            raise ValueError(f"{device_id}: cut_out_mpa must be above cut_in_mpa")
        rated = self.attr("rated_pressure_mpa", 1.6)
        self.valve_set = float(self.options["valve_set_mpa"] or round(rated * 1.1, 3))
        self.pressure = self.rng.uniform(self.cut_in, self.cut_out)
        self.loaded = self.rng.random() < 0.5

    def demand(self, t: float) -> float:
        """Air drawn, MPa/s of the receiver: a trickle at night, tools running by day."""
        h = self.clock.hour(t)
        return 0.0006 + bumps(h, [(10.0, 1.8, 0.0025), (15.0, 2.0, 0.0025)])

    def _tick(self, t: float, dt: float) -> list[Message]:
        out: list[Message] = []
        for fault in self.incidents("safety_valve_lift", t - dt if t > dt else None, t):
            out.append(self._lift(fault.start_s, spurious=True))
        creep = self.active("pressure_creep", t)
        if creep is not None:
            self.loaded = True
            self.pressure += creep.params["rate_mpa_per_min"] / 60 * dt
        else:
            if self.pressure <= self.cut_in:
                self.loaded = True
            elif self.pressure >= self.cut_out:
                self.loaded = False
            supply = 0.006 if self.loaded else 0.0
            self.pressure = max(0.0, self.pressure + (supply - self.demand(t)) * dt)
        if self.pressure >= self.valve_set:
            out.append(self._lift(t, spurious=False))
        return out

    def _lift(self, t: float, *, spurious: bool) -> Message:
        at = round(self.pressure, 3)
        # A spurious lift vents a little; a real one blows down below its set point.
        self.pressure = self.pressure - 0.05 if spurious else self.valve_set * (1 - BLOWDOWN)
        return event(t, "safety_valve_lift", pressure_mpa=at, set_pressure_mpa=self.valve_set)

    def _sample(self, t: float) -> dict[str, float]:
        return {"pressure_mpa": round(max(0.0, self.pressure + self.rng.gauss(0, 0.003)), 3)}
