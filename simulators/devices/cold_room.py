"""Walk-in cold rooms: a freezer and a chiller.

The air warms towards the kitchen through the walls (a time constant of hours) and much faster
through an open door; a thermostat runs the compressor between setpoint ± differential/2, so the
temperature saws gently inside its band. A freezer defrosts a few times a day (compressor off,
heater on, a couple of degrees up, well inside the alarm limit). Staff open the door now and then
during working hours for 20-90 s; each opening is a `door_open` / `door_closed` pair of events and
a small bump in temperature and humidity.

Faults: `door_left_open`, `compressor_failure`, and `hover` — a hunting thermostat that swings the
temperature around a value (the flapping freezer at −18 °C).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from simulators.devices.base import FaultSpec, Message, Param, SampledModel, event


class ColdRoom(SampledModel):
    profile: ClassVar[str] = "freezer"
    interval_s: ClassVar[float] = 60.0
    primary_metric: ClassVar[str | None] = "temperature"
    TICK_S: ClassVar[float] = 1.0

    # Per profile: setpoint, through-wall time constant (s), compressor cooling (°C/s), door time
    # constant (s), base humidity (%RH), defrosts per day.
    _PHYSICS: ClassVar[dict[str, tuple[float, float, float, float, float, float]]] = {
        "freezer": (-22.0, 8 * 3600, 0.005, 3600, 76.0, 4),
        "chiller": (3.5, 4 * 3600, 0.004, 1800, 80.0, 0),
    }
    DEFROST_S: ClassVar[float] = 12 * 60
    DEFROST_HEAT: ClassVar[float] = 0.1 / 60  # °C/s from the defrost heater
    OPEN_HOURS: ClassVar[tuple[float, float]] = (6.0, 22.0)  # when staff use the room

    OPTIONS: ClassVar[dict[str, Param]] = {
        "setpoint_c": Param("number", minimum=-50, maximum=20, help="thermostat setpoint"),
        "differential_c": Param("number", 2.0, minimum=0.2, maximum=10),
        "ambient_c": Param("number", 25.0, minimum=-10, maximum=45, help="the kitchen outside"),
        "door_openings_per_hour": Param("number", 1.5, minimum=0, maximum=60),
        "defrosts_per_day": Param("number", minimum=0, maximum=12),
    }
    FAULTS: ClassVar[dict[str, FaultSpec]] = {
        "door_left_open": FaultSpec("the door stays open (door_open at the start, door_closed at the end)"),
        "compressor_failure": FaultSpec("the compressor stops; the room warms towards the kitchen"),
        "hover": FaultSpec(
            "a hunting thermostat swings the temperature around a value (a flapping reading)",
            {
                "around_c": Param("number", required=True, minimum=-50, maximum=40),
                "swing_c": Param("number", 0.8, minimum=0, maximum=10, help="amplitude, °C"),
                "period_min": Param("number", 12.0, minimum=1, maximum=600),
            },
        ),
    }

    def __init__(self, device_id: str, **kwargs: Any) -> None:
        super().__init__(device_id, **kwargs)
        setpoint, self._wall_tau, self._cooling, self._door_tau, self._humidity_base, defrosts = (
            self._PHYSICS[self.profile]
        )
        o = self.options
        self.setpoint = o["setpoint_c"] if o["setpoint_c"] is not None else setpoint
        self._half_band = o["differential_c"] / 2
        self._ambient = o["ambient_c"]
        self._door_rate = o["door_openings_per_hour"] / 3600
        per_day = o["defrosts_per_day"] if o["defrosts_per_day"] is not None else defrosts
        self._defrost_every = 86400 / per_day if per_day else math.inf
        self.temperature = self.setpoint + self.rng.uniform(-self._half_band, self._half_band)
        self.humidity = self._humidity_base
        self.compressor = self.rng.random() < 0.5
        self.door_open = False
        self._next_open = self._draw_opening(0.0)
        self._close_at = -math.inf

    def _draw_opening(self, after: float) -> float:
        """The next time staff open the door: a Poisson process that runs only in working hours."""
        if self._door_rate <= 0:
            return math.inf
        t = after
        for _ in range(10_000):
            t += self.rng.expovariate(self._door_rate)
            lo, hi = self.OPEN_HOURS
            if lo <= self.clock.hour(t) < hi:
                return round(t)
        return math.inf

    def _defrosting(self, t: float) -> bool:
        if self.profile != "freezer" or math.isinf(self._defrost_every):
            return False
        # Timer defrosts at fixed local times from midnight (00:00, 06:00, ... for four a day).
        since_midnight = self.clock.hour(t) * 3600
        return since_midnight % self._defrost_every < self.DEFROST_S

    def _tick(self, t: float, dt: float) -> list[Message]:
        out: list[Message] = []
        # The door: staff habits, and a fault that keeps it open.
        if t >= self._next_open:
            self._close_at = self._next_open + self.rng.uniform(20, 90)
            self._next_open = self._draw_opening(self._close_at)
        staff_open = t < self._close_at
        held_open = self.active("door_left_open", t) is not None
        door = staff_open or held_open
        if door != self.door_open:
            self.door_open = door
            out.append(event(t, "door_open" if door else "door_closed"))

        hover = self.active("hover", t)
        failed = self.active("compressor_failure", t) is not None
        defrost = self._defrosting(t)
        if hover is not None:
            # The thermostat chases a setpoint that wanders around `around_c`, and catches it.
            phase = 2 * math.pi * (t - hover.start_s) / (hover.params["period_min"] * 60)
            target = hover.params["around_c"] + hover.params["swing_c"] * math.sin(phase)
            self.compressor = self.temperature > target
            self.temperature += (target - self.temperature) * min(1.0, dt / 60)
        else:
            if failed or defrost:
                self.compressor = False
            elif self.temperature > self.setpoint + self._half_band:
                self.compressor = True
            elif self.temperature < self.setpoint - self._half_band:
                self.compressor = False
            # Heat through the walls, through the open door, from the defrost heater.
            gain = (self._ambient - self.temperature) / self._wall_tau
            if door:
                gain += (self._ambient - self.temperature) / self._door_tau
            if defrost:
                gain += self.DEFROST_HEAT
            self.temperature += (gain - (self._cooling if self.compressor else 0.0)) * dt

        # Humidity: the evaporator dries the air, the door lets the kitchen's moisture in.
        target_rh = 92.0 if door else self._humidity_base + (-4.0 if self.compressor else 3.0)
        self.humidity += (target_rh - self.humidity) * min(1.0, dt / 300)
        return out

    def _sample(self, t: float) -> dict[str, float]:
        temperature = round(self.temperature + self.rng.gauss(0, 0.1), 1)
        humidity = round(min(100.0, max(0.0, self.humidity + self.rng.gauss(0, 0.8))), 1)
        return {"temperature": temperature, "humidity": humidity}


class Freezer(ColdRoom):
    profile: ClassVar[str] = "freezer"


class Chiller(ColdRoom):
    profile: ClassVar[str] = "chiller"
