"""Episodes that outlive their alert: a device alert closed (dismissed, say) while the device still
reports its condition is raised again at once, as a new alert. Pure logic on the engine's state;
the telemetry detector finds the closed alerts in the database and feeds them here.

Why here and not in the alert store: the store sees an episode only as the violations it was sent,
and the detector sends an episode's raise once. Only the detector knows the condition still holds
(its rule state has the episode's id and no clear yet), so only it can say so again.

Determinism: the new episode's id is `violation_id("device", device, code, closed_at)`, the close
time as the alert store recorded it. A detector that replays its partition after a restart rebuilds
the old episode, finds the same closed alert and raises the same id again, which the store absorbs.
The new id replaces the old one in the rule state, so its clear (or its severity upgrade) goes to
the new alert, and a second close of the new alert raises a third.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from detectors.rules.builtin import OFFLINE, OUT_OF_RANGE
from detectors.rules.state import DeviceState
from vigil.catalogue import Severity, violation_type
from vigil.events import Violation, violation_id

if TYPE_CHECKING:
    from detectors.rules.engine import RuleEngine


@dataclass(frozen=True, slots=True)
class ClosedAlert:
    """A device alert closed or dismissed with no clear from the detector (`cleared_at` null)."""

    device_id: str
    code: str
    status: str  # closed | dismissed
    closed_at: int  # epoch ms
    violation_ids: frozenset[str]  # the ids of the episodes ("active" violations) it gathered


def reopen(engine: RuleEngine, closed: Iterable[ClosedAlert]) -> list[Violation]:
    """Raise again every episode of `engine` still under way whose alert is among `closed`."""
    out: list[Violation] = []
    for alert in closed:
        dev = engine.device(alert.device_id)
        if dev is None:
            continue  # not this engine's device, or its state was dropped
        for rule, st in zip(dev.program.rules, dev.states, strict=True):
            if rule.code == alert.code and st.raised in alert.violation_ids:
                old, started = st.raised, st.since if st.since is not None else st.raised_at
                st.raised = _new_id(dev, alert)
                st.raised_at = alert.closed_at
                out.append(_violation(dev, alert, st.raised, st.severity, old, started))
        if alert.code == OFFLINE and dev.offline_id in alert.violation_ids:
            old, dev.offline_id = dev.offline_id, _new_id(dev, alert)
            out.append(_violation(dev, alert, dev.offline_id, _catalogued(OFFLINE), old, dev.offline_since))
        if alert.code == OUT_OF_RANGE and dev.range_id in alert.violation_ids:
            old, dev.range_id = dev.range_id, _new_id(dev, alert)
            out.append(_violation(dev, alert, dev.range_id, _catalogued(OUT_OF_RANGE), old, dev.range_since))
    engine.stats.violations += len(out)
    return out


def _new_id(dev: DeviceState, alert: ClosedAlert) -> str:
    return violation_id("device", dev.device_id, alert.code, alert.closed_at)


def _catalogued(code: str) -> Severity:
    return violation_type(code).severity


def _violation(
    dev: DeviceState, alert: ClosedAlert, vid: str, severity: Severity, old: str | None, started: int
) -> Violation:
    name = violation_type(alert.code).name_en
    evidence: dict[str, Any] = {
        "rule": "still_active",
        "previous_violation_id": old,
        "previous_status": alert.status,
        "condition_since": started,  # the episode's start (device time; ingest time when offline)
        "values": dict(dev.values),
        # The summary people read (vigil.summaries): still going on after a close or a dismissal.
        "params": {"variant": f"still_{alert.status}"},
    }
    return Violation(
        violation_id=vid,
        code=alert.code,
        state="active",
        enterprise_id=dev.enterprise_id,
        site_id=dev.site_id,
        source_kind="device",
        source_id=dev.device_id,
        window_start=alert.closed_at,
        # On the device's own clock, as every detection is: the alert store compares it with the
        # clear's, which comes on that clock too.
        detected_at=max(dev.last_ts, alert.closed_at - dev.offset),
        severity=severity,
        detector=dev.program.detector,
        summary=f"{name}: still active after the previous alert was {alert.status} on {dev.device_id}",
        evidence=evidence,
    )
