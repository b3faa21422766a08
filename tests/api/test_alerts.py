"""Listing, filtering, paginating and reading alerts seeded into the real PostgreSQL."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from api.pagination import encode_cursor
from tests.api.conftest import T0, Seeder

LIST = "/api/v1/alerts"


def ids(page: httpx.Response) -> list[str]:
    assert page.status_code == 200, page.text
    return [item["alert_id"] for item in page.json()["items"]]


def ts(response_value: str) -> datetime:
    return datetime.fromisoformat(response_value)


async def test_list_item_carries_every_field_and_catalogue_names(
    client: httpx.AsyncClient, seed: Seeder
) -> None:
    alert_id = await seed.alert(1, created_at=T0, code="KITCHEN_RODENT", tier=1)
    r = await client.get(LIST, params={"enterprise_id": seed.enterprise})
    [item] = r.json()["items"]
    assert r.json()["next_cursor"] is None
    assert item["alert_id"] == alert_id
    assert item["name_en"] and item["name_zh"] and item["name_en"] != item["name_zh"]
    # Seeded without params, the summaries read as the code's catalogue name in each language.
    assert (item.pop("summary_zh"), item.pop("summary_en")) == (item["name_zh"], item["name_en"])
    assert item | {"name_en": None, "name_zh": None} == {
        "alert_id": alert_id,
        "code": "KITCHEN_RODENT",
        "name_en": None,
        "name_zh": None,
        "enterprise_id": seed.enterprise,
        "site_id": seed.site,
        "source_kind": "camera",
        "source_id": f"cam-{seed.uid}-1",
        "status": "open",
        "severity": "minor",
        "tier": 1,
        "summary": "alert 1",
        "evidence": {"frame": "frames/1.jpg", "score": 0.9},
        "detector": "vision:test",
        "window_start": item["window_start"],
        "first_seen": item["first_seen"],
        "last_seen": item["last_seen"],
        "cleared_at": None,
        "occurrences": 1,
        "deadline": item["deadline"],
        "created_at": item["created_at"],
        "updated_at": item["updated_at"],
        # Seeded by SQL: the lifecycle columns keep their defaults.
        "leniency": "not_eligible",
        "penalty_case": False,
        "prior_alert_id": None,
        "disposition": None,
        "assignee": None,
        "assigned_slot": None,
        "difficult": False,
        "notified_at": None,
        "acknowledged_at": None,
        "rectified_at": None,
        "escalated_at": None,
        "escalation_reason": None,
        "closed_at": None,
        "close_reason": None,
        "operator_ack_at": None,
        "operator_ack_by": None,
    }
    assert ts(item["created_at"]) == T0
    assert ts(item["window_start"]) == T0 - timedelta(minutes=1)
    assert ts(item["deadline"]) == T0 + timedelta(hours=24)


async def test_a_code_missing_from_the_catalogue_still_lists(client: httpx.AsyncClient, seed: Seeder) -> None:
    await seed.alert(1, created_at=T0, code="RETIRED_CODE")
    [item] = (await client.get(LIST, params={"enterprise_id": seed.enterprise})).json()["items"]
    assert item["code"] == "RETIRED_CODE" and item["name_en"] is None and item["name_zh"] is None


async def test_filters(client: httpx.AsyncClient, seed: Seeder) -> None:
    other_ent, other_site = f"ent2-{seed.uid}", f"site2-{seed.uid}"
    await seed.registry(other_ent, other_site)
    second_site = f"site3-{seed.uid}"
    await seed.registry(seed.enterprise, second_site)
    a1 = await seed.alert(1, created_at=T0, code="KITCHEN_NO_MASK", status="open", tier=2)
    a2 = await seed.alert(
        2, created_at=T0 + timedelta(hours=1), code="KITCHEN_RODENT", status="notified", tier=1
    )
    a3 = await seed.alert(
        3,
        created_at=T0 + timedelta(hours=2),
        code="KITCHEN_NO_HAT",
        status="closed",
        tier=3,
        site=second_site,
    )
    a4 = await seed.alert(
        4, created_at=T0 + timedelta(hours=3), status="dismissed", enterprise=other_ent, site=other_site
    )

    async def query(**params: Any) -> list[str]:
        return ids(await client.get(LIST, params={"enterprise_id": seed.enterprise, **params}))

    assert await query() == [a3, a2, a1]
    assert ids(await client.get(LIST, params={"enterprise_id": other_ent})) == [a4]
    assert await query(status="open") == [a1]
    assert await query(status=["open", "closed"]) == [a3, a1]  # repeatable
    assert await query(status="escalated") == []
    assert await query(code="KITCHEN_RODENT") == [a2]
    assert await query(site_id=second_site) == [a3]
    assert await query(site_id=seed.site) == [a2, a1]
    assert await query(tier=1) == [a2]
    assert await query(tier=3) == [a3]
    assert await query(since=(T0 + timedelta(hours=1)).isoformat()) == [a3, a2]  # inclusive
    assert await query(until=(T0 + timedelta(hours=1)).isoformat()) == [a1]  # exclusive
    assert await query(since=T0.isoformat(), until=(T0 + timedelta(hours=2)).isoformat()) == [a2, a1]
    # No offset means UTC; the same instant written in +08:00 gives the same answer.
    assert await query(since="2024-05-01T09:00:00") == [a3, a2]
    assert await query(since="2024-05-01T17:00:00+08:00") == [a3, a2]
    assert await query(status="notified", code="KITCHEN_RODENT", tier=1, site_id=seed.site) == [a2]
    assert await query(status="open", tier=1) == []


async def test_cursor_pagination_returns_every_alert_once_in_order(
    client: httpx.AsyncClient, seed: Seeder
) -> None:
    # Ties on created_at straddle the page boundaries: alert_id must break them consistently.
    minutes = [0, 1, 1, 2, 2, 2, 3]  # newest first: 3 2 2 | 2 1 1 | 0
    created = {await seed.alert(n, created_at=T0 + timedelta(minutes=m)): m for n, m in enumerate(minutes)}
    expected = sorted(created, key=lambda a: (created[a], a), reverse=True)

    seen: list[str] = []
    pages = 0
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"enterprise_id": seed.enterprise, "limit": 3}
        if cursor is not None:
            params["cursor"] = cursor
        r = await client.get(LIST, params=params)
        page = ids(r)
        pages += 1
        seen += page
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
        assert len(page) == 3
        assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert seen == expected
    assert pages == 3


async def test_exactly_full_last_page_has_no_next_cursor(client: httpx.AsyncClient, seed: Seeder) -> None:
    for n in range(4):
        await seed.alert(n, created_at=T0 + timedelta(minutes=n))
    first = await client.get(LIST, params={"enterprise_id": seed.enterprise, "limit": 2})
    second = await client.get(
        LIST, params={"enterprise_id": seed.enterprise, "limit": 2, "cursor": first.json()["next_cursor"]}
    )
    assert len(ids(second)) == 2 and second.json()["next_cursor"] is None


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "cursor",
    [
        "not a cursor",
        "!!!!",
        "é",
        "",
        "A" * 600,
        b64(b"not json"),
        b64(b'{"a": 1}'),
        b64(b'["2024-05-01T08:00:00+00:00"]'),
        b64(b'[1, "x"]'),
        b64(b'["yesterday", "x"]'),
        b64(b'["2024-05-01T08:00:00", "x"]'),  # naive time
        b64(b'["2024-05-01T08:00:00+00:00", ""]'),
        b64(b'["2024-05-01T08:00:00+00:00", "a\\u0000b"]'),  # NUL: PostgreSQL text refuses it
        b64(b"\xff\xfe"),
    ],
)
async def test_bad_cursor_is_400_with_a_clear_message(client: httpx.AsyncClient, cursor: str) -> None:
    r = await client.get(LIST, params={"cursor": cursor})
    assert r.status_code == 400, r.text
    assert r.json()["detail"].startswith("invalid cursor")


async def test_a_hand_made_valid_cursor_works(client: httpx.AsyncClient, seed: Seeder) -> None:
    a0 = await seed.alert(0, created_at=T0)
    a1 = await seed.alert(1, created_at=T0 + timedelta(minutes=1))
    cursor = encode_cursor(T0 + timedelta(minutes=1), a1)
    assert ids(await client.get(LIST, params={"enterprise_id": seed.enterprise, "cursor": cursor})) == [a0]


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 201},
        {"limit": "ten"},
        {"tier": 4},
        {"status": "bogus"},
        {"since": "not a time"},
        {"until": "2024-13-45"},
        {"enterprise_id": "bad\x00id"},
        {"site_id": "x" * 65},
        {"code": "DROP TABLE alerts;"},
    ],
)
async def test_bad_filters_are_422_never_500(client: httpx.AsyncClient, params: dict[str, Any]) -> None:
    r = await client.get(LIST, params=params)
    assert r.status_code == 422, r.text


async def test_limit_bounds(client: httpx.AsyncClient, seed: Seeder) -> None:
    for n in range(3):
        await seed.alert(n, created_at=T0 + timedelta(minutes=n))
    assert len(ids(await client.get(LIST, params={"enterprise_id": seed.enterprise, "limit": 1}))) == 1
    assert len(ids(await client.get(LIST, params={"enterprise_id": seed.enterprise, "limit": 200}))) == 3
    assert len(ids(await client.get(LIST, params={"limit": 200}))) <= 200


async def test_detail_includes_the_audit_trail_in_order(client: httpx.AsyncClient, seed: Seeder) -> None:
    alert_id = await seed.alert(1, created_at=T0, status="acknowledged")
    await seed.audit(alert_id, "detector:vision", "opened", None, "open")
    await seed.audit(alert_id, "notifier", "notified", "open", "notified")
    await seed.audit(alert_id, "operator:li", "acknowledged", "notified", "acknowledged")
    r = await client.get(f"{LIST}/{alert_id}")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["alert_id"] == alert_id and body["status"] == "acknowledged"
    assert body["name_en"] == "Kitchen staff without a mask"
    assert [(a["actor"], a["action"], a["from_status"], a["to_status"]) for a in body["audit"]] == [
        ("detector:vision", "opened", None, "open"),
        ("notifier", "notified", "open", "notified"),
        ("operator:li", "acknowledged", "notified", "acknowledged"),
    ]
    assert body["audit"][1]["reason"] == "notified by notifier"
    assert all(ts(a["at"]).tzinfo is not None for a in body["audit"])


async def test_detail_without_audit_has_an_empty_trail(client: httpx.AsyncClient, seed: Seeder) -> None:
    alert_id = await seed.alert(1, created_at=T0)
    assert (await client.get(f"{LIST}/{alert_id}")).json()["audit"] == []


async def test_unknown_alert_is_404_with_a_clear_message(client: httpx.AsyncClient, uid: str) -> None:
    r = await client.get(f"{LIST}/missing-{uid}")
    assert r.status_code == 404
    assert r.json() == {"detail": f"alert missing-{uid} not found"}


@pytest.mark.parametrize("alert_id", ["bad%00id", "x" * 129, "semi;colon"])
async def test_malformed_alert_id_is_422_never_500(client: httpx.AsyncClient, alert_id: str) -> None:
    assert (await client.get(f"{LIST}/{alert_id}")).status_code == 422
