"""A kitchen's combustible-gas detector: `gas_lel_pct` (% of the lower explosive limit) sits near
zero with a little sensor noise, and rises a few per cent while the burners are lit and cooking
(breakfast, lunch and dinner services), never near the 20 % alarm.

Fault: `gas_leak` — the concentration climbs (a minute or so of time constant) to `peak_lel_pct`
and stays while the leak lasts, then airs out over a few minutes.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from simulators.devices.base import FaultSpec, Message, Param, SampledModel, bumps

MEALS = ((7.0, 0.6, 1.2), (11.8, 0.9, 3.0), (18.0, 1.1, 3.5))  # centre hour, width, % LEL


class GasDetector(SampledModel):
    profile: ClassVar[str] = "gas_detector"
    interval_s: ClassVar[float] = 10.0
    primary_metric: ClassVar[str | None] = "gas_lel_pct"
    TICK_S: ClassVar[float] = 1.0
    OPTIONS: ClassVar[dict[str, Param]] = {
        "cooking": Param("number", 1.0, minimum=0, maximum=4, help="scales the cooking bumps"),
    }
    FAULTS: ClassVar[dict[str, FaultSpec]] = {
        "gas_leak": FaultSpec(
            "gas escapes: the reading climbs to peak_lel_pct while the leak lasts",
            {"peak_lel_pct": Param("number", 45.0, minimum=0, maximum=100)},
        ),
    }

    def __init__(self, device_id: str, **kwargs: Any) -> None:
        super().__init__(device_id, **kwargs)
        self._cooking = float(self.options["cooking"])
        self.leak = 0.0  # % LEL from a leak, on top of the kitchen's background
        self._flicker = 0.0

    def background(self, t: float) -> float:
        return self._cooking * bumps(self.clock.hour(t), MEALS)

    def _tick(self, t: float, dt: float) -> list[Message]:
        leak = self.active("gas_leak", t)
        target = leak.params["peak_lel_pct"] if leak is not None else 0.0
        tau = 60.0 if leak is not None else 180.0  # fills fast, airs out slower
        self.leak += (target - self.leak) * (1 - math.exp(-dt / tau))
        # Burners being lit: short puffs while cooking.
        self._flicker *= math.exp(-dt / 20)
        if self.rng.random() < dt * self.background(t) / 120:
            self._flicker += self.rng.uniform(0.5, 2.0)
        return []

    def _sample(self, t: float) -> dict[str, float]:
        value = self.background(t) * 0.5 + self._flicker + self.leak + abs(self.rng.gauss(0, 0.15))
        return {"gas_lel_pct": round(min(100.0, max(0.0, value)), 2)}
