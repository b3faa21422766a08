"""A passenger elevator: calls from floor to floor, a car that accelerates, cruises and levels, a
door that opens, dwells and closes (now and then reopening on an obstruction: `door_reopen`).

Traffic is an office building's: a morning rush up, lunch, an evening rush, quiet nights. Each
call sends the car (empty) to the caller's floor, where the passenger gets in, then to the
destination. The car publishes once a second while anything happens and every 30 s when it idles
at a landing with its door closed.

Faults:
- `stuck_between_floors` (`passenger`): the car halts between two landings, door closed, until a
  rescue brings it level at the end and the door opens.
- `door_obstructed`: every attempt to close the door ends in a reopen.
- `door_open_while_moving` (`seconds`): the car leaves a landing with its door still open.
- `overspeed` (`seconds`, `factor`): on a long run the drive overshoots the rated speed.
- `over_travel` (`direction`, `overshoot_m`): the car runs past the terminal landing and relevels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from simulators.devices.base import DeviceModel, FaultSpec, Message, Param, bumps, event, telemetry

TICK_S = 0.1
ACCEL = 0.8  # m/s², up and down
DOOR_ZONE_M = 0.1  # a landing's door zone: the car is "level" within this
OPENING_S, CLOSING_S, DWELL_S = 2.0, 3.0, 4.0
REOPEN_CHANCE = 0.05  # of a door closing, on a normal day
HEARTBEAT_S = 30.0
RESCUE_MPS = 0.3  # a technician's inspection speed

Phase = Literal["idle", "moving", "opening", "open", "closing", "stuck", "overshot"]


@dataclass(slots=True)
class _Stop:
    floor: int
    action: Literal["pickup", "dropoff", "none"]
    overshoot_m: float = 0.0


class Elevator(DeviceModel):
    profile: ClassVar[str] = "elevator"
    interval_s: ClassVar[float] = 1.0
    primary_metric: ClassVar[str | None] = "speed_mps"
    OPTIONS: ClassVar[dict[str, Param]] = {
        "floor_height_m": Param("number", 3.0, minimum=2.0, maximum=10.0),
        "traffic": Param("number", 1.0, minimum=0, maximum=20, help="scales the number of calls"),
    }
    FAULTS: ClassVar[dict[str, FaultSpec]] = {
        "stuck_between_floors": FaultSpec(
            "the car halts between two landings until rescued at the end",
            {"passenger": Param("bool", True, help="someone is in the car")},
        ),
        "door_obstructed": FaultSpec("the door reopens at every attempt to close it"),
        "door_open_while_moving": FaultSpec(
            "the car leaves a landing with its door open",
            {"seconds": Param("number", 5.0, minimum=1, maximum=60)},
            lasting=False,
        ),
        "overspeed": FaultSpec(
            "on a long run the car overshoots its rated speed",
            {
                "seconds": Param("number", 4.0, minimum=1, maximum=60),
                "factor": Param("number", 1.3, minimum=1.0, maximum=3.0, help="of the rated speed"),
            },
            lasting=False,
        ),
        "over_travel": FaultSpec(
            "the car runs past the terminal landing, stops and relevels",
            {
                "direction": Param("string", "top", choices=("top", "bottom")),
                "overshoot_m": Param("number", 0.5, minimum=0.05, maximum=4),
            },
            lasting=False,
        ),
    }

    def __init__(self, device_id: str, **kwargs: Any) -> None:
        super().__init__(device_id, **kwargs)
        self.floor_height = float(self.options["floor_height_m"])
        self.top_m = self.attr("top_m", 60.0)
        self.rated = self.attr("rated_speed_mps", 1.75)
        self.floors = int(self.top_m // self.floor_height) + 1
        self._traffic = float(self.options["traffic"])
        self.position = self.rng.randrange(self.floors) * self.floor_height
        self.velocity = 0.0
        self.phase: Phase = "idle"
        self.passenger = False
        self.door_open = False
        self._phase_left = 0.0  # seconds left in a timed phase (door, overshoot pause)
        self._stops: list[_Stop] = []
        self._calls: list[list[_Stop]] = []
        self._next_call = self._draw_call(0.0)
        self._ucm_left = 0.0  # seconds of movement with the door open still to come
        self._overspeed: tuple[float, float] | None = None  # (seconds left, factor)
        self._stuck_at: float | None = None  # where the car halts (m), once a stuck fault began
        self._rescuing = False
        self._reopen_at, self._will_reopen = 0.0, False
        self._handled: set[int] = set()  # ids of incident faults already acted on
        self._t = 0.0
        self._last_pub = -math.inf
        self._was_busy = True

    # -- traffic ------------------------------------------------------------------------------

    def _calls_per_hour(self, t: float) -> float:
        h = self.clock.hour(t)
        rate = 2.0 + bumps(h, [(8.5, 0.7, 40.0), (12.5, 0.8, 25.0), (17.8, 0.7, 35.0), (14.0, 3.5, 12.0)])
        return rate * self._traffic

    def _draw_call(self, after: float) -> float:
        t = after
        for _ in range(100_000):
            # Thinning: candidates at the peak rate, kept with probability rate(t) / peak.
            peak = 60.0 * max(self._traffic, 1e-9)
            t += self.rng.expovariate(peak / 3600)
            if self.rng.random() < self._calls_per_hour(t) / peak:
                return t
        return math.inf

    def _new_call(self) -> None:
        src = self.rng.randrange(self.floors)
        dst = self.rng.randrange(self.floors - 1)
        dst += dst >= src  # any other floor
        if len(self._calls) < 10:  # people give up and take the stairs
            self._calls.append([_Stop(src, "pickup"), _Stop(dst, "dropoff")])

    # -- geometry -----------------------------------------------------------------------------

    def _landing(self, floor: int) -> float:
        return floor * self.floor_height

    def _nearest_floor(self) -> int:
        return min(self.floors - 1, max(0, round(self.position / self.floor_height)))

    def in_door_zone(self) -> bool:
        return abs(self.position - self._landing(self._nearest_floor())) <= DOOR_ZONE_M + 1e-9

    # -- faults -------------------------------------------------------------------------------

    def _start_incidents(self, t: float) -> None:
        for i, fault in enumerate(self.faults):
            if i in self._handled or t < fault.start_s:
                continue
            if fault.kind in ("stuck_between_floors", "door_obstructed") and not fault.active(t):
                continue
            self._handled.add(i)
            here = self._nearest_floor()
            if fault.kind == "stuck_between_floors":
                self._calls.clear()
                for stop in self._stops:
                    stop.action = "none"  # nobody gets in or out any more
                if self.phase == "moving":  # the brake holds the car about a metre on
                    ahead = self.position + math.copysign(1.0, self.velocity or 1.0)
                    if abs(ahead - round(ahead / self.floor_height) * self.floor_height) < 0.5:
                        ahead += math.copysign(0.6, self.velocity or 1.0)
                    self._stuck_at = min(self.top_m - 0.5, max(0.5, ahead))
                else:  # leave for the next landing and halt half-way there
                    direction = 1 if here < self.floors - 1 else -1
                    self._stuck_at = self._landing(here) + direction * self.floor_height / 2
                    self._calls.insert(0, [_Stop(here + direction, "none")])
                self.passenger = bool(fault.params["passenger"])
            elif fault.kind == "door_obstructed" and self.phase == "idle":
                self._calls.insert(0, [_Stop(here, "none")])  # someone calls the car and blocks the door
            elif fault.kind == "door_open_while_moving":
                self._ucm_left = float(fault.params["seconds"])
                other = here + 1 if here < self.floors - 1 else here - 1
                self._calls.insert(0, [_Stop(here, "pickup"), _Stop(other, "dropoff")])
            elif fault.kind == "overspeed":
                self._overspeed = (float(fault.params["seconds"]), float(fault.params["factor"]))
                far = 0 if here > (self.floors - 1) / 2 else self.floors - 1
                self._calls.insert(0, [_Stop(here, "pickup"), _Stop(far, "dropoff")])
            elif fault.kind == "over_travel":
                top = fault.params["direction"] == "top"
                terminal, opposite = (self.floors - 1, 0) if top else (0, self.floors - 1)
                start = opposite if here == terminal else here
                overshoot = float(fault.params["overshoot_m"]) * (1 if top else -1)
                self._calls.insert(0, [_Stop(start, "pickup"), _Stop(terminal, "dropoff", overshoot)])

    # -- the car ------------------------------------------------------------------------------

    def _tick(self, t: float) -> list[Message]:
        out: list[Message] = []
        while t >= self._next_call:
            self._new_call()
            self._next_call = self._draw_call(self._next_call)
        self._start_incidents(t)
        stuck_fault = self.active("stuck_between_floors", t)
        if self._stuck_at is not None and stuck_fault is None:
            self._stuck_at = None
            if self.phase == "stuck":  # the rescue: level at the nearest landing, open up
                self._rescuing = True
                self._stops = [_Stop(self._nearest_floor(), "dropoff")]
                self.phase = "moving"

        if self.phase == "idle":
            if not self._stops and self._calls:
                self._stops = self._calls.pop(0)
            if self._stops:
                stop = self._stops[0]
                if abs(self.position - self._landing(stop.floor)) < 1e-6 and not stop.overshoot_m:
                    self._set_phase("opening", OPENING_S)
                else:
                    self._depart()
        elif self.phase == "moving":
            self._move(t)
        elif self.phase == "stuck":
            self.velocity = 0.0
        elif self.phase == "overshot":
            self._phase_left -= TICK_S
            if self._phase_left <= 0:  # relevel slowly to the landing
                self._stops[0].overshoot_m = 0.0
                self._rescuing = True
                self.phase = "moving"
        else:  # the door: opening, open, closing
            self._phase_left -= TICK_S
            if self.phase == "open" and self._stops:
                stop = self._stops[0]
                if self._phase_left <= DWELL_S / 2 and stop.action != "none":
                    self.passenger = stop.action == "pickup"
                    stop.action = "none"
            if self.phase == "closing" and self._obstructed(t):
                out.append(event(t, "door_reopen", floor=self._nearest_floor()))
                self._set_phase("opening", OPENING_S / 2)
            elif self._phase_left <= 0:
                if self.phase == "opening":
                    self._set_phase("open", DWELL_S * (2 if self._rescuing else 1))
                elif self.phase == "open":
                    self._set_phase("closing", CLOSING_S)
                    self._reopen_at = self.rng.uniform(0.5, CLOSING_S - 0.5)
                    self._will_reopen = self.rng.random() < REOPEN_CHANCE
                else:
                    self.door_open = False
                    self._rescuing = False
                    if self._stops:
                        self._stops.pop(0)
                    self.phase = "idle"
                    if self._stops and self._ucm_left > 0:
                        self._depart()
        return out

    def _obstructed(self, t: float) -> bool:
        elapsed = CLOSING_S - self._phase_left
        if self.active("door_obstructed", t) is not None:
            return elapsed >= 1.5
        if self._will_reopen and elapsed >= self._reopen_at:
            self._will_reopen = False
            return True
        return False

    def _set_phase(self, phase: Phase, seconds: float) -> None:
        self.phase, self._phase_left = phase, seconds
        self.door_open = phase in ("opening", "open", "closing")

    def _depart(self) -> None:
        self.phase = "moving"
        self.door_open = self._ucm_left > 0

    def _move(self, t: float) -> None:
        stop = self._stops[0]
        target = self._landing(stop.floor) + stop.overshoot_m
        if self._stuck_at is not None:
            target = self._stuck_at
        vmax = self.rated
        if self._rescuing:
            vmax = RESCUE_MPS
        elif self._ucm_left > 0 and self.door_open:  # left with the door open: creeping
            vmax = RESCUE_MPS
            self._ucm_left -= TICK_S
            if self._ucm_left <= 0:
                self.door_open = False
        elif self._overspeed is not None:
            left, factor = self._overspeed
            vmax = self.rated * factor
            if abs(self.velocity) > self.rated * 1.15:
                left -= TICK_S
            self._overspeed = (left, factor) if left > 0 else None
        d = target - self.position
        speed = abs(self.velocity)
        wanted = min(vmax, math.sqrt(2 * ACCEL * abs(d)))
        speed = min(speed + ACCEL * TICK_S, wanted) if speed < wanted else max(wanted, speed - ACCEL * TICK_S)
        step = speed * TICK_S
        if abs(d) <= step + 1e-9:
            self.position, self.velocity = target, 0.0
            if self._stuck_at is not None:
                self.phase = "stuck"
            elif stop.overshoot_m:
                self.phase, self._phase_left = "overshot", 3.0
            else:
                self._set_phase("opening", OPENING_S)
            return
        self.velocity = math.copysign(speed, d)
        self.position += self.velocity * TICK_S

    # -- publishing ---------------------------------------------------------------------------

    def _advance(self, start: float | None, end: float) -> list[Message]:
        out: list[Message] = []
        while self._t + TICK_S <= end + 1e-9:
            self._t = round(self._t + TICK_S, 6)
            out.extend(self._tick(self._t))
        busy = self.phase != "idle"
        if busy or self._was_busy or end - self._last_pub >= HEARTBEAT_S or start is None:
            self._last_pub = end
            out.append(telemetry(end, self.metrics()))
        self._was_busy = busy
        return out

    def metrics(self) -> dict[str, float]:
        return {
            "speed_mps": round(abs(self.velocity), 2),
            "position_m": round(self.position, 2),
            "door_open": float(self.door_open),
            "in_door_zone": float(self.in_door_zone()),
            "passenger": float(self.passenger),
        }
