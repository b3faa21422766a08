"""Simulated equipment, one model per type of `docs/devices.md`: cold rooms (freezer, chiller),
elevator, boiler, pressure vessel, gas filling station and kitchen gas detector.

`make_device(profile, device_id, ...)` builds one; `device.step(t_s)` advances it and returns what
it sent (see `base`). Everything is seeded: the same inputs give the same messages.
"""

from __future__ import annotations

from typing import Any, Final

from simulators.devices.base import Clock, DeviceModel, Fault, FaultSpec, Message, Param
from simulators.devices.boiler import Boiler
from simulators.devices.cold_room import Chiller, Freezer
from simulators.devices.contract import EVENTS, METRICS, PROFILES
from simulators.devices.elevator import Elevator
from simulators.devices.gas_detector import GasDetector
from simulators.devices.gas_filling import GasFillingStation
from simulators.devices.pressure_vessel import PressureVessel

MODELS: Final[dict[str, type[DeviceModel]]] = {
    model.profile: model
    for model in (Freezer, Chiller, Elevator, Boiler, PressureVessel, GasFillingStation, GasDetector)
}
assert set(MODELS) == PROFILES, "one model per equipment type of the contract"


def make_device(profile: str, device_id: str, **kwargs: Any) -> DeviceModel:
    try:
        model = MODELS[profile]
    except KeyError:
        raise ValueError(
            f"unknown device type {profile!r}; expected one of {', '.join(sorted(MODELS))}"
        ) from None
    return model(device_id, **kwargs)


__all__ = [
    "EVENTS",
    "METRICS",
    "MODELS",
    "PROFILES",
    "Clock",
    "DeviceModel",
    "Fault",
    "FaultSpec",
    "Message",
    "Param",
    "make_device",
]
