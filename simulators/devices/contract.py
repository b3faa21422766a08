"""What each equipment type publishes, as `docs/devices.md` fixes it: metric names with their valid
ranges, and event names. The simulated devices publish exactly these (a test reads the tables of
the document back and compares), and a sensor fault knows from here what "out of range" means."""

from __future__ import annotations

from typing import Final

# profile -> metric -> (lowest valid, highest valid), inclusive.
METRICS: Final[dict[str, dict[str, tuple[float, float]]]] = {
    "freezer": {"temperature": (-60.0, 60.0), "humidity": (0.0, 100.0)},
    "chiller": {"temperature": (-60.0, 60.0), "humidity": (0.0, 100.0)},
    "elevator": {
        "speed_mps": (0.0, 20.0),
        "position_m": (-5.0, 1000.0),
        "door_open": (0.0, 1.0),
        "in_door_zone": (0.0, 1.0),
        "passenger": (0.0, 1.0),
    },
    "boiler": {
        "pressure_mpa": (0.0, 10.0),
        "water_level_mm": (-500.0, 1000.0),
        "temperature_c": (0.0, 400.0),
    },
    "pressure_vessel": {"pressure_mpa": (0.0, 40.0)},
    "gas_filling": {},
    "gas_detector": {"gas_lel_pct": (0.0, 100.0)},
}

EVENTS: Final[dict[str, frozenset[str]]] = {
    "freezer": frozenset({"door_open", "door_closed"}),
    "chiller": frozenset({"door_open", "door_closed"}),
    "elevator": frozenset({"door_reopen"}),
    "boiler": frozenset(),
    "pressure_vessel": frozenset({"safety_valve_lift"}),
    "gas_filling": frozenset({"filling_started"}),
    "gas_detector": frozenset(),
}

PROFILES: Final = frozenset(METRICS)

# Every device is judged offline after this long without a message (attr:heartbeat_s).
HEARTBEAT_S: Final = 300.0
