"""The simulated devices the model learns from and is measured on, and their seeded split.

Data: simulated only. Episodes of the device simulators (`simulators/devices/`), each one device
of a watched profile, seeded: normal days (door openings, defrost cycles, daily load cycles, with
the device's options drawn at random) and faults after a stretch of normal operation (a freezer
or chiller whose compressor fails or whose door is left open; a boiler whose pressure creeps over
its rating, whose feed pump stops or which runs hot; a pressure vessel whose unloader sticks),
plus traps whose rule never fires (a thermostat hunting around the limit, a pressure that creeps
but stays under the rating, a door left open only a few minutes).

Split: by whole episodes (seeded, per profile and kind): 60 % train, 20 % validation (to choose the
operating point), 20 % test (the figures reported), plus normal days at default settings (a second
false-warning check).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from simulators.devices import Clock, Fault
from vigil.registry import Device

DEFAULT_DAYS = 20  # per profile: normal days at default settings, for a second false-warning check

EPOCH: Final = datetime(2026, 1, 5, tzinfo=UTC)
ENTERPRISE, SITE = "sim-early-warning", "sim-site"

# Per profile and kind: how many episodes. `normal` days are 24 h; a fault follows a normal
# stretch of 0.5-6 h, and an hour of recovery follows the fault.
PLAN: Final[dict[str, dict[str, int]]] = {
    "freezer": {"normal": 200, "compressor_failure": 40, "door_left_open": 40, "hover": 15},
    "chiller": {"normal": 160, "compressor_failure": 40, "door_left_open": 40},
    "boiler": {"normal": 160, "pressure_creep": 30, "creep_under_rating": 10, "low_water": 30,
               "over_temperature": 20},
    "pressure_vessel": {"normal": 160, "pressure_creep": 40, "short_creep": 10},
}  # fmt: skip
# Kinds whose rule is meant to fire (the drifts a warning should precede); the others are traps.
DRIFTS: Final = frozenset({"compressor_failure", "door_left_open", "pressure_creep", "low_water",
                           "over_temperature"})  # fmt: skip
SPLITS: Final = (("train", 0.6), ("validation", 0.2), ("test", 0.2))


@dataclass(frozen=True, slots=True)
class Episode:
    key: str
    profile: str
    kind: str
    seed: str
    start_hour: float  # local (UTC) time of day at the start
    hours: float
    attributes: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    faults: tuple[Fault, ...] = ()

    @property
    def device_id(self) -> str:
        return "ew-" + hashlib.sha256(self.key.encode()).hexdigest()[:12]

    @property
    def fault_start_ms(self) -> int | None:
        return self.clock.start_ms + round(self.faults[0].start_s * 1000) if self.faults else None

    @property
    def clock(self) -> Clock:
        return Clock(EPOCH + timedelta(hours=self.start_hour))

    @property
    def device(self) -> Device:
        return Device(self.device_id, ENTERPRISE, SITE, self.profile, dict(self.attributes))


def make_episode(profile: str, kind: str, seed: str) -> Episode:
    """One episode of `profile`, `kind` ("normal", a fault, a trap), drawn from `seed`."""
    r = random.Random(f"episode:{seed}")  # noqa: S311 - seeded simulation, not secrets
    start_hour = round(r.uniform(0, 24), 2)
    attributes: dict[str, Any] = {}
    options: dict[str, Any] = {}
    if profile in ("freezer", "chiller"):
        if profile == "freezer":
            options["setpoint_c"] = round(r.uniform(-23.5, -21.5), 1)
            options["defrosts_per_day"] = r.choice([0, 2, 3, 4, 4, 6])
        else:
            options["setpoint_c"] = round(r.uniform(2.5, 4.5), 1)
        options["differential_c"] = round(r.uniform(1.2, 2.4), 1)
        options["ambient_c"] = round(r.uniform(15, 35), 1)
        options["door_openings_per_hour"] = round(
            r.choice([0.5, 1.0, 1.5, 1.5, 3.0, 6.0]) * r.uniform(0.7, 1.3), 2
        )
        attributes["duration_s"] = r.choice([600, 900, 900, 900, 1200, 1800])
    elif profile == "boiler":
        options["working_pressure_mpa"] = round(r.uniform(0.85, 1.05), 2)
        options["level_mm"] = round(r.uniform(110, 200))
    elif profile == "pressure_vessel":
        rated = r.choice([1.0, 1.6, 1.6, 1.6, 2.5])
        cut_out = round(rated * r.uniform(0.55, 0.72), 3)
        options["cut_out_mpa"] = cut_out
        options["cut_in_mpa"] = round(cut_out - rated * r.uniform(0.08, 0.15), 3)
        attributes["rated_pressure_mpa"] = rated

    if kind == "normal":
        return Episode(f"{profile}/{kind}/{seed}", profile, kind, seed, start_hour, 24.0, attributes, options)

    lead_s = round(r.uniform(0.5, 6.0) * 3600)
    params: dict[str, Any] = {}
    fault = kind
    if kind == "compressor_failure":
        duration = r.uniform(2.0, 5.0) * 3600
    elif kind == "door_left_open":
        duration = r.uniform(4, 45) * 60
    elif kind == "hover":
        params = {
            "around_c": round(-18.0 + r.uniform(-0.8, 0.0), 2),  # at or just under the default limit
            "swing_c": round(r.uniform(0.6, 1.5), 2),
            "period_min": round(r.uniform(8, 20), 1),
        }
        duration = r.uniform(1.0, 4.0) * 3600
    elif kind == "pressure_creep" and profile == "boiler":
        params = {"to_mpa": round(r.uniform(1.3, 1.6), 3), "ramp_min": round(r.uniform(5, 40), 1)}
        duration = (params["ramp_min"] + r.uniform(20, 60)) * 60
    elif kind == "creep_under_rating":
        fault = "pressure_creep"
        params = {"to_mpa": round(r.uniform(1.1, 1.2), 3), "ramp_min": round(r.uniform(5, 40), 1)}
        duration = (params["ramp_min"] + r.uniform(20, 60)) * 60
    elif kind == "low_water":
        params = {"rate_mm_per_min": round(r.uniform(2.0, 10.0), 2)}
        duration = r.uniform(40, 90) * 60
    elif kind == "over_temperature":
        params = {"to_c": round(r.uniform(200, 230), 1), "ramp_min": round(r.uniform(3, 30), 1)}
        duration = (params["ramp_min"] + r.uniform(20, 40)) * 60
    elif kind == "pressure_creep":  # a vessel
        params = {"rate_mpa_per_min": round(r.uniform(0.01, 0.1), 4)}
        duration = r.uniform(60, 120) * 60
    elif kind == "short_creep":
        fault = "pressure_creep"
        params = {"rate_mpa_per_min": round(r.uniform(0.01, 0.03), 4)}
        duration = r.uniform(3, 10) * 60
    else:
        raise ValueError(f"unknown episode kind {kind!r}")
    duration = round(duration)
    faults = (Fault(fault, float(lead_s), float(lead_s + duration), params),)
    hours = (lead_s + duration + 3600) / 3600
    return Episode(
        f"{profile}/{kind}/{seed}", profile, kind, seed, start_hour, hours, attributes, options, faults
    )


def plan(seed: int | str) -> list[Episode]:
    return [
        make_episode(profile, kind, f"{seed}:{profile}:{kind}:{i}")
        for profile, kinds in PLAN.items()
        for kind, count in kinds.items()
        for i in range(count)
    ]


def plan_defaults(seed: int | str) -> list[Episode]:
    """Normal days of each profile at the simulators' and profiles' default settings (the shipped
    scenarios' devices), from a random time of day: a second held-out check of false warnings,
    never trained or chosen on."""
    out = []
    for profile in PLAN:
        for i in range(DEFAULT_DAYS):
            seed_i = f"{seed}:{profile}:defaults:{i}"
            start = round(random.Random(f"episode:{seed_i}").uniform(0, 24), 2)  # noqa: S311
            out.append(Episode(f"{profile}/defaults/{seed_i}", profile, "normal", seed_i, start, 24.0))
    return out


def split(episodes: Sequence[Episode], seed: int | str) -> dict[str, list[Episode]]:
    """Whole episodes to train / validation / test, seeded, in the same proportions per kind."""
    out: dict[str, list[Episode]] = {name: [] for name, _ in SPLITS}
    groups: dict[tuple[str, str], list[Episode]] = {}
    for ep in episodes:
        groups.setdefault((ep.profile, ep.kind), []).append(ep)
    r = random.Random(f"split:{seed}")  # noqa: S311 - a seeded split, not secrets
    for group in groups.values():
        shuffled = list(group)
        r.shuffle(shuffled)
        start = 0
        for i, (name, share) in enumerate(SPLITS):
            end = len(shuffled) if i == len(SPLITS) - 1 else start + round(share * len(shuffled))
            out[name] += shuffled[start:end]
            start = end
    return out
