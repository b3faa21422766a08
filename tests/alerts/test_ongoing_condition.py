"""Never silent about an ongoing violation (issue 16.5): a device alert is not verified as rectified
while its device still reports the condition; it is once the detector has sent the clear. Camera
findings and point violations (nothing ever clears them) are verified as before."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from alerts import lifecycle
from alerts.store import apply_violation
from tests.lifecycle import OPERATOR, POLICY, Site, act, alert, open_alert, submit, violation
from vigil.errors import IllegalTransition
from vigil.events import Violation, violation_id


def device_violation(
    site: Site, *, rule: str = "threshold", code: str = "COLD_CHAIN_FREEZER_WARM"
) -> Violation:
    ms = int(datetime.now(UTC).timestamp() * 1000)
    source = f"freezer-{site.site_id}"
    return dataclasses.replace(
        violation(site, code),
        violation_id=violation_id("device", source, code, ms),
        source_kind="device",
        source_id=source,
        window_start=ms,
        detected_at=ms,
        detector="rules",
        evidence={"rule": rule, "value": -5.0},
    )


async def clear(pool, v: Violation) -> None:
    async with pool.connection() as conn, conn.transaction():
        cleared = dataclasses.replace(v, state="cleared", detected_at=v.detected_at + 60_000)
        assert await apply_violation(conn, cleared, POLICY) == "cleared"


async def test_a_device_alert_is_not_verified_while_the_device_still_reports_it(pool, site):
    v = device_violation(site)
    a = await open_alert(pool, v)
    await submit(pool, site, a["alert_id"], "replaced the compressor")
    with pytest.raises(
        IllegalTransition, match=r"still reports Freezer .* / 设备仍在报告“冷冻库温度高于-18℃”"
    ):
        await act(pool, lifecycle.verify, a["alert_id"], actor=OPERATOR, policy=POLICY)
    still = await alert(pool, a["alert_id"])
    assert (still["status"], still["closed_at"]) == ("rectification_submitted", None)
    # The operator can still send the proof back, or dismiss a false alarm: only "fixed" is refused.
    lifecycle.check_transition("reject", still["status"])

    await clear(pool, v)  # the freezer is cold again: now the rectification can be verified
    closed = await act(pool, lifecycle.verify, a["alert_id"], actor=OPERATOR, policy=POLICY)
    assert (closed["status"], closed["disposition"]) == ("closed", "warning")


async def test_camera_findings_and_point_violations_are_verified_as_before(pool, site):
    camera = await open_alert(pool, violation(site))
    point = await open_alert(
        pool, device_violation(site, rule="date_compare", code="GAS_CYLINDER_INSPECTION_OVERDUE")
    )
    for a in (camera, point):
        assert a["cleared_at"] is None
        await submit(pool, site, a["alert_id"])
        closed = await act(pool, lifecycle.verify, a["alert_id"], actor=OPERATOR, policy=POLICY)
        assert closed["status"] == "closed"
