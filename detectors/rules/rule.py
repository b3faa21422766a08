"""What every compiled rule kind shares: the `Rule` base class (its timer and event hooks, and how
it reports an episode), the `Resolver` that binds a profile's limits to one device's attributes,
and the small formatting helpers of summaries."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from detectors.rules.expr import Limit, limits_of
from detectors.rules.profiles import Profile
from vigil.catalogue import SEVERITIES, Severity, violation_type
from vigil.events import DeviceEvent, ViolationState

if TYPE_CHECKING:
    from detectors.rules.engine import RuleEngine
    from detectors.rules.state import DeviceState, RuleState

RANK = {s: i for i, s in enumerate(SEVERITIES)}


def to_ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


def unit_suffix(unit: str) -> str:
    """The unit after a value (" °C"); nothing for a 0/1 flag."""
    return f" {unit}" if unit and unit != "0/1" else ""


def duration(ms: int) -> str:
    seconds = ms / 1000
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


class Rule:
    """A rule compiled for one device's attributes. Subclasses say when their timer is due and what
    happens then, and what an event does to them."""

    __slots__ = ("code", "name_en", "severity")
    # Whether an event may be judged on its own, whatever came before or after it on the device's
    # clock: then a late one (older than the device's newest) is judged too, not ignored.
    ORDER_FREE: ClassVar[bool] = False

    def __init__(self, code: str, severity: Severity) -> None:
        self.code = code
        self.name_en = violation_type(code).name_en
        self.severity: Severity = severity

    def listens(self) -> tuple[str, ...]:
        """The events this rule's `on_event` wants."""
        return ()

    def due(self, st: RuleState) -> int | None:
        return None

    def fire(self, engine: RuleEngine, dev: DeviceState, st: RuleState, at: int) -> None:
        """The timer at `at` (device time) is due."""

    def on_event(self, engine: RuleEngine, dev: DeviceState, st: RuleState, msg: DeviceEvent) -> None:
        """An event this rule listens to."""

    def report(
        self,
        engine: RuleEngine,
        dev: DeviceState,
        st: RuleState,
        state: ViolationState,
        at: int,
        summary: str,
        evidence: dict[str, Any],
        vid: str | None = None,
    ) -> None:
        """Emit the episode in `st` (its id, start and severity) as `state` at `at`."""
        assert st.raised is not None and st.since is not None
        engine.emit(dev, self.code, vid or st.raised, state, st.since, at, st.severity, summary, evidence)


class Resolver:
    """Resolves the limits of one profile for one device's attributes, remembering which it used."""

    def __init__(self, profile: Profile, attributes: Mapping[str, Any]) -> None:
        self._profile, self._attributes = profile, attributes

    def __call__(self, limit: Limit) -> float:
        return limit.resolve(self._attributes, self._profile.attributes)

    def used(self, *exprs: Any) -> dict[str, float]:
        """The attributes read by these conditions and limits, resolved, for evidence."""
        out: dict[str, float] = {}
        for expr in exprs:
            if expr is None:
                continue
            limits = (expr,) if isinstance(expr, Limit) else limits_of(expr)
            for limit in limits:
                if limit.attr is not None:
                    out[limit.attr] = Limit(attr=limit.attr, default=limit.default).resolve(
                        self._attributes, self._profile.attributes
                    )
        return out
