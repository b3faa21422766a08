"""The violation catalogue, loaded from `vigil/data/violations.toml` and validated once."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Literal, get_args

from vigil.errors import ConfigurationError

Severity = Literal["info", "minor", "major", "critical"]
SEVERITIES: tuple[Severity, ...] = get_args(Severity)


@dataclass(frozen=True, slots=True)
class ViolationType:
    code: str
    name_zh: str
    name_en: str
    domain: str
    severity: Severity
    tier: int
    deadline_hours: float
    first_offence_warning: bool
    # The provisions a printed rectification notice cites; empty where the catalogue has none.
    legal_basis_zh: str = ""


def _parse(code: str, raw: dict[str, object]) -> ViolationType:
    fields = ("name_zh", "name_en", "domain", "severity", "tier", "deadline_hours", "first_offence_warning")
    missing = [f for f in fields if f not in raw]
    if missing:
        raise ConfigurationError(f"catalogue code {code}: missing {', '.join(missing)}")
    severity = raw["severity"]
    if severity not in SEVERITIES:
        raise ConfigurationError(f"catalogue code {code}: severity {severity!r} not in {SEVERITIES}")
    tier = raw["tier"]
    if tier not in (1, 2, 3):
        raise ConfigurationError(f"catalogue code {code}: tier must be 1, 2 or 3, got {tier!r}")
    deadline = raw["deadline_hours"]
    if not isinstance(deadline, int | float) or deadline <= 0:
        raise ConfigurationError(f"catalogue code {code}: deadline_hours must be a positive number")
    return ViolationType(
        code=code,
        name_zh=str(raw["name_zh"]),
        name_en=str(raw["name_en"]),
        domain=str(raw["domain"]),
        severity=severity,  # narrowed to Severity by the membership check above
        tier=tier,
        deadline_hours=float(deadline),
        first_offence_warning=bool(raw["first_offence_warning"]),
        legal_basis_zh=str(raw.get("legal_basis_zh", "")),
    )


@lru_cache(maxsize=1)
def catalogue() -> dict[str, ViolationType]:
    text = resources.files("vigil").joinpath("data/violations.toml").read_text(encoding="utf-8")
    codes = tomllib.loads(text).get("codes", {})
    return {code: _parse(code, raw) for code, raw in codes.items()}


def violation_type(code: str) -> ViolationType:
    try:
        return catalogue()[code]
    except KeyError:
        raise ConfigurationError(f"violation code {code!r} is not in the catalogue") from None
