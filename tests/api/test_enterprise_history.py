"""The enterprise's view of its alert: what was decided and why, as the enterprise was told it —
never the bureau's internal handling (the reason an alert was flagged difficult, who handles it and
in which slot, operators' names, who acknowledged it on the wall)."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from alerts import lifecycle
from api.models import AlertPublic, EnterpriseAlert
from tests.api.conftest import bearer, make_key
from tests.lifecycle import OPERATOR, POLICY, Site, act, open_alert, submit, violation

BASE = "/api/v1/enterprise"
INTERNAL_NOTE = "owner is a known troublemaker; handle with care"
STAFF_NAME = "wang"  # OPERATOR is "operator:wang"


@pytest.fixture
async def own(pool: Any, site: Site) -> dict[str, str]:
    return bearer(await make_key(pool, "enterprise", site.enterprise_id))


async def handled_alert(pool: Any, site: Site) -> str:
    """An alert the bureau handled internally and then decided on: flagged difficult with a note,
    reassigned, acknowledged on the wall, a rectification rejected with a reason, one verified."""
    a = await open_alert(pool, violation(site))
    alert_id = a["alert_id"]
    await act(pool, lifecycle.operator_acknowledge, alert_id, actor=OPERATOR, note="on the wall")
    await act(pool, lifecycle.flag_difficult, alert_id, actor=OPERATOR, reason=INTERNAL_NOTE)
    await act(pool, lifecycle.assign, alert_id, actor=OPERATOR, staff_id=site.staff["C"], reason="specialist")
    await submit(pool, site, alert_id, "bin lid replaced")
    await act(
        pool,
        lifecycle.reject,
        alert_id,
        actor=OPERATOR,
        reason="the photo does not show the bin",
        policy=POLICY,
    )
    await submit(pool, site, alert_id, "photo of the new bin")
    await act(
        pool, lifecycle.verify, alert_id, actor=OPERATOR, note="bin replaced as required", policy=POLICY
    )
    return alert_id


async def test_the_enterprise_sees_decisions_and_reasons_but_no_internal_handling(
    client: httpx.AsyncClient, pool: Any, site: Site, own: dict[str, str]
) -> None:
    alert_id = await handled_alert(pool, site)
    r = await client.get(f"{BASE}/alerts/{alert_id}", headers=own)
    assert r.status_code == 200, r.text
    detail = r.json()
    history = [(h["action"], h["to_status"], h["by"], h["reason"]) for h in detail["history"]]
    assert [h[0] for h in history] == [
        "opened",
        "rectification_submitted",
        "rejected",
        "rectification_submitted",
        "verified",
    ]
    assert ("rejected", "rejected", "bureau", "the photo does not show the bin") in history
    assert ("verified", "closed", "bureau", "bin replaced as required") in history
    assert history[1] == (
        "rectification_submitted",
        "rectification_submitted",
        "enterprise",
        "bin lid replaced",
    )
    assert [r["decision_reason"] for r in detail["rectifications"]] == [
        "the photo does not show the bin",
        "bin replaced as required",
    ]
    body = r.text
    for secret in (INTERNAL_NOTE, STAFF_NAME, site.staff["A"], site.staff["C"], "specialist", "on the wall"):
        assert secret not in body, f"{secret!r} leaked into the enterprise's view"
    for field in ("audit", "assignee", "assigned_slot", "difficult", "operator_ack_at", "operator_ack_by"):
        assert field not in detail
    assert all("decided_by" not in rect for rect in detail["rectifications"])


async def test_lists_and_moves_answer_with_the_enterprise_view_too(
    client: httpx.AsyncClient, pool: Any, site: Site, own: dict[str, str]
) -> None:
    a = await open_alert(pool, violation(site))  # assigned to the site's slot-A handler on opening
    listed = (await client.get(f"{BASE}/alerts", headers=own)).json()
    acked = (await client.post(f"{BASE}/alerts/{a['alert_id']}/acknowledge", headers=own)).json()
    for item in (listed["items"][0], acked):
        assert "assignee" not in item and "assigned_slot" not in item and "difficult" not in item
        assert site.staff["A"] not in orjson.dumps(item).decode()


async def test_the_operator_still_sees_everything(client: httpx.AsyncClient, pool: Any, site: Site) -> None:
    alert_id = await handled_alert(pool, site)
    detail = (await client.get(f"/api/v1/alerts/{alert_id}")).json()
    assert INTERNAL_NOTE in orjson.dumps(detail["audit"]).decode()
    assert detail["assignee"] == site.staff["C"] and detail["difficult"] is True


def test_the_enterprise_model_is_the_operator_model_less_the_internal_fields() -> None:
    internal = set(AlertPublic.model_fields) - set(EnterpriseAlert.model_fields)
    assert internal == {"assignee", "assigned_slot", "difficult", "operator_ack_at", "operator_ack_by"}
    assert set(EnterpriseAlert.model_fields) <= set(AlertPublic.model_fields)
