"""A device on a rule engine, driven in seconds from T0: the tests' shorthand."""

from __future__ import annotations

from typing import Any

from detectors.rules import Rulebook, RuleEngine
from vigil.events import DeviceEvent, DeviceStatus, Telemetry, Violation
from vigil.registry import Device

T0 = 1_763_000_000_000  # 2025-11-13 02:13:20 UTC = 10:13:20 in Shanghai: daytime
NIGHT = 12 * 3600  # T0 + 12 h = 22:13:20 in Shanghai
MIN = 60
BOOK = Rulebook()  # the shipped profiles


def ms(at: float) -> int:
    return T0 + round(at * 1000)


class Rig:
    """One device of `profile`; `t`, `ev`, `status` and `tick` take seconds after T0 and return what
    the engine emitted (everything is also kept in `log`)."""

    def __init__(
        self,
        profile: str,
        attrs: dict[str, Any] | None = None,
        *,
        device: str = "d1",
        engine: RuleEngine | None = None,
        skew_s: float = 0.0,
    ) -> None:
        self.engine = engine if engine is not None else RuleEngine(BOOK)
        self.device = Device(device, "ent", "site", profile, dict(attrs or {}))
        self.skew_ms = round(skew_s * 1000)  # received_at - ts: the device clock is this far behind
        self.log: list[Violation] = []

    def _feed(self, message: Telemetry | DeviceEvent | DeviceStatus) -> list[Violation]:
        out = self.engine.feed(message, self.device)
        self.log += out
        return out

    def t(self, at: float, recv: float | None = None, **metrics: float) -> list[Violation]:
        d = self.device
        received = ms(recv) if recv is not None else ms(at) + self.skew_ms
        return self._feed(
            Telemetry(d.enterprise_id, d.device_id, d.site_id, d.profile, ms(at), metrics, received)
        )

    def ev(self, at: float, event: str, recv: float | None = None, **data: Any) -> list[Violation]:
        d = self.device
        received = ms(recv) if recv is not None else ms(at) + self.skew_ms
        return self._feed(
            DeviceEvent(d.enterprise_id, d.device_id, d.site_id, d.profile, ms(at), event, data, received)
        )

    def status(self, at: float, online: bool) -> list[Violation]:
        d = self.device
        received = ms(at) + self.skew_ms
        return self._feed(
            DeviceStatus(d.enterprise_id, d.device_id, d.site_id, d.profile, received, online, received)
        )

    def tick(self, at: float) -> list[Violation]:
        out = self.engine.tick(ms(at))
        self.log += out
        return out

    def series(self, metric: str, points: list[tuple[float, float]], **also: float) -> list[Violation]:
        out: list[Violation] = []
        for at, value in points:
            out += self.t(at, **{metric: value}, **also)
        return out


def cs(violations: list[Violation], code: str | None = None) -> list[tuple[str, str]]:
    """(code, state) of each violation, optionally of one code only."""
    return [(v.code, v.state) for v in violations if code is None or v.code == code]


def of(violations: list[Violation], code: str) -> list[Violation]:
    return [v for v in violations if v.code == code]
