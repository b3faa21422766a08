"""The rule engine alone, on a mixed fleet: messages judged per second.

    python -m benchmarks.rules [messages] [devices]

Messages are built before the clock starts (decoding is the service's cost, not the engine's);
the timed loop is what the service does per partition: `feed` each message, `tick` after every
batch of 500. The fleet mixes every profile, some devices with their own ratings, readings that
wander across the limits (so rules raise and clear), door, reopen, valve and filling events.
"""

from __future__ import annotations

import random
import sys
import time
from dataclasses import dataclass
from typing import Any

from detectors.rules.engine import Rulebook, RuleEngine
from vigil.events import DeviceEvent, DeviceMessage, Telemetry
from vigil.registry import Device

T0 = 1_763_000_000_000
_BATCH = 500


@dataclass(frozen=True, slots=True)
class BenchResult:
    messages: int
    devices: int
    seconds: float
    violations: int

    @property
    def per_second(self) -> float:
        return self.messages / self.seconds if self.seconds else float("inf")

    def __str__(self) -> str:
        return (
            f"rule engine: {self.messages} messages from {self.devices} devices in {self.seconds:.3f} s"
            f" = {self.per_second:,.0f} messages/s ({self.violations} violations)"
        )


_PROFILES = ("freezer", "chiller", "elevator", "boiler", "pressure_vessel", "gas_detector", "gas_filling")


def _reading(profile: str, rng: random.Random, hot: bool) -> dict[str, float]:
    """A plausible reading; `hot` pushes it across the profile's limits."""
    g = rng.gauss
    if profile == "freezer":
        return {"temperature": g(-14 if hot else -21, 1.5), "humidity": min(100.0, max(0.0, g(80, 8)))}
    if profile == "chiller":
        return {"temperature": g(9.5 if hot else 4, 1.5), "humidity": min(100.0, max(0.0, g(80, 8)))}
    if profile == "elevator":
        moving = rng.random() < 0.6
        return {
            "speed_mps": abs(g(2.1 if hot else 1.5, 0.2)) if moving else 0.0,
            "position_m": min(60.0, max(0.0, g(30, 15))),
            "door_open": 0.0 if moving else float(rng.random() < 0.5),
            "in_door_zone": 0.0 if moving or hot else 1.0,
            "passenger": float(rng.random() < 0.5),
        }
    if profile == "boiler":
        return {
            "pressure_mpa": g(1.3 if hot else 1.0, 0.05),
            "water_level_mm": g(40 if hot else 200, 20),
            "temperature_c": g(170, 10),
        }
    if profile == "pressure_vessel":
        return {"pressure_mpa": g(1.7 if hot else 1.3, 0.05)}
    return {"gas_lel_pct": max(0.0, g(30 if hot else 2, 3))}


def fleet(messages: int, devices: int, seed: int = 7) -> list[tuple[DeviceMessage, Device]]:
    """A deterministic mixed stream: `devices` devices in turn, 10 s apart per device."""
    rng = random.Random(seed)  # noqa: S311 (test data, not secrets)
    registry = []
    for i in range(devices):
        profile = _PROFILES[i % len(_PROFILES)]
        attributes: dict[str, Any] = {}
        if i % 10 == 3:  # some devices carry their own ratings
            attributes = {
                "max_temp_c": -25,
                "rated_speed_mps": 2.5,
                "rated_pressure_mpa": 1.4,
                "duration_s": 600,
            }
        registry.append(Device(f"dev-{i:05d}", "ent-bench", f"site-{i % 50:03d}", profile, attributes))
    out: list[tuple[DeviceMessage, Device]] = []
    hot = [False] * devices
    for n in range(messages):
        i = n % devices
        d = registry[i]
        ts = T0 + (n // devices) * 10_000 + i % 1000
        if rng.random() < 0.01:
            hot[i] = not hot[i]  # an excursion starts or ends
        roll = rng.random()
        message: DeviceMessage
        if d.profile == "gas_filling":
            year = 2025 if rng.random() < 0.02 else 2027  # now and then an overdue cylinder
            due = f"{year}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}"
            data = {"cylinder_id": f"cyl-{rng.randint(0, 999)}", "inspection_due": due}
            message = DeviceEvent(
                d.enterprise_id, d.device_id, d.site_id, d.profile, ts, "filling_started", data, ts
            )
        elif roll < 0.05 and d.profile in ("freezer", "chiller"):
            event = "door_open" if rng.random() < 0.5 else "door_closed"
            message = DeviceEvent(d.enterprise_id, d.device_id, d.site_id, d.profile, ts, event, {}, ts)
        elif roll < 0.05 and d.profile == "elevator":
            message = DeviceEvent(
                d.enterprise_id, d.device_id, d.site_id, d.profile, ts, "door_reopen", {}, ts
            )
        elif roll < 0.01 and d.profile == "pressure_vessel":
            message = DeviceEvent(
                d.enterprise_id, d.device_id, d.site_id, d.profile, ts, "safety_valve_lift", {}, ts
            )
        else:
            metrics = _reading(d.profile, rng, hot[i])
            message = Telemetry(d.enterprise_id, d.device_id, d.site_id, d.profile, ts, metrics, ts)
        out.append((message, d))
    return out


def bench(n: int = 200_000, devices: int = 1_000, *, seed: int = 7) -> BenchResult:
    """Feed `n` messages of a mixed fleet through one engine; the time excludes building them."""
    stream = fleet(n, devices, seed)
    engine = RuleEngine(Rulebook())
    violations = 0
    feed, tick = engine.feed, engine.tick
    start = time.perf_counter()
    for k, (message, device) in enumerate(stream, start=1):
        violations += len(feed(message, device))
        if k % _BATCH == 0:
            violations += len(tick(engine.watermark))
    seconds = time.perf_counter() - start
    return BenchResult(n, devices, seconds, violations)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    n = int(args[0]) if args else 200_000
    devices = int(args[1]) if len(args) > 1 else 1_000
    print(bench(n, devices))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
