"""Compatibility: the old cold-chain rule's interface over the rule engine.

The telemetry detector runs `detectors.rules.RuleEngine` for every profile; the cold-room rules
are data in `detectors/profiles/freezer.toml` and `chiller.toml`. `ColdChainRule().evaluate(reading,
attributes)` is kept for callers of the old interface: it judges freezer and chiller readings
with the engine (every rule of those profiles) and ignores other profiles, as it always did.
"""

from __future__ import annotations

from typing import Any

from detectors.rules import Rulebook, RuleEngine
from vigil.events import Telemetry, Violation
from vigil.registry import Device

PROFILES = frozenset({"freezer", "chiller"})


class ColdChainRule:
    def __init__(self, rulebook: Rulebook | None = None) -> None:
        self._engine = RuleEngine(rulebook)

    def evaluate(self, reading: Telemetry, attributes: dict[str, Any]) -> list[Violation]:
        if reading.profile not in PROFILES:
            return []
        device = Device(
            reading.device_id, reading.enterprise_id, reading.site_id, reading.profile, attributes
        )
        return self._engine.feed(reading, device)
