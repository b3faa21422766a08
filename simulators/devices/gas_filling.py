"""A gas cylinder filling station: in working hours it fills a cylinder every few minutes, each a
`filling_started` event naming the cylinder and the date its periodic inspection is due.

The station serves a fleet of cylinders (`fleet`), each with its own id and inspection date; a
cylinder comes back again and again. Every cylinder of the fleet is due well after the scenario,
so normal filling never breaks the rule; a cylinder that is overdue is a fault. The station has no
sensor readings, so between fillings it says it is alive with a `status` online every two minutes.

Fault: `overdue_cylinder` — a cylinder whose inspection was due `overdue_days` before the day it
is filled (`cylinder_id` to name it) is filled at the fault's time.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any, ClassVar

from simulators.devices.base import DeviceModel, FaultSpec, Message, Param, bumps, event, status

KEEPALIVE_S = 120.0
# Fleet inspections fall due between these many days after the clock's start (periodic inspection
# is every few years, so most are far off; none inside a scenario of up to a month).
FLEET_DUE_DAYS = (45, 4 * 365)


class GasFillingStation(DeviceModel):
    profile: ClassVar[str] = "gas_filling"
    interval_s: ClassVar[float] = 60.0
    OPTIONS: ClassVar[dict[str, Param]] = {
        "fleet": Param("number", 300, minimum=1, maximum=100_000, help="cylinders in circulation"),
        "fills_per_hour": Param("number", 12.0, minimum=0, maximum=600, help="at the busiest"),
    }
    FAULTS: ClassVar[dict[str, FaultSpec]] = {
        "overdue_cylinder": FaultSpec(
            "a cylinder past its inspection date is filled",
            {
                "cylinder_id": Param("string"),
                "overdue_days": Param("number", 45, minimum=1, maximum=10_000),
            },
            lasting=False,
        ),
    }

    def __init__(self, device_id: str, **kwargs: Any) -> None:
        super().__init__(device_id, **kwargs)
        first_day = self.clock.at(0).date()
        self.fleet = [
            (
                f"{device_id[:8].upper()}-{i:05d}",
                first_day + timedelta(days=self.rng.randint(*FLEET_DUE_DAYS)),
            )
            for i in range(int(self.options["fleet"]))
        ]
        self._rate = float(self.options["fills_per_hour"])
        self._next_fill = self._draw_fill(0.0)
        self._last_sent = 0.0

    def fills_per_hour(self, t: float) -> float:
        h = self.clock.hour(t)
        if not 7.5 <= h < 19.0:
            return 0.0
        return self._rate * min(1.0, 0.35 + bumps(h, [(10.0, 1.5, 0.65), (16.0, 1.5, 0.65)]))

    def _draw_fill(self, after: float) -> float:
        if self._rate <= 0:
            return math.inf
        t = after
        for _ in range(100_000):
            t += self.rng.expovariate(self._rate / 3600)
            if self.rng.random() < self.fills_per_hour(t) / self._rate:
                return round(t, 1)
        return math.inf

    def _advance(self, start: float | None, end: float) -> list[Message]:
        out: list[Message] = []
        while self._next_fill <= end:
            cylinder, due = self.rng.choice(self.fleet)
            out.append(self._filling(self._next_fill, cylinder, due.isoformat()))
            self._next_fill = self._draw_fill(self._next_fill)
        for fault in self.incidents("overdue_cylinder", start, end):
            day = self.clock.at(fault.start_s).date()
            due = day - timedelta(days=int(fault.params["overdue_days"]))
            cylinder = (
                fault.params["cylinder_id"]
                or f"{self.device_id[:8].upper()}-X{self.fault_rng.randrange(10**4):04d}"
            )
            out.append(self._filling(fault.start_s, cylinder, due.isoformat()))
        if out:
            self._last_sent = max(m.t_s for m in out)
        if end - self._last_sent >= KEEPALIVE_S:
            out.append(status(end, True))
            self._last_sent = end
        return out

    def _filling(self, t: float, cylinder: str, due: str) -> Message:
        return event(t, "filling_started", cylinder_id=cylinder, inspection_due=due)
