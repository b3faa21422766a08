"""Reading alerts through `api.alert_query`, the one implementation behind the operator's and the
enterprise's routes.

First the pure parts, with no database: cursors as a route takes them, splitting a fetched page,
who a principal is confined to, and the page query each filter, tenant, cursor and order makes.
Then the reads themselves against the real PostgreSQL (the `seed` fixture): one paging for both
kinds of caller, history by when alerts ended, and tenancy on the detail, status and images."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from fastapi import HTTPException
from psycopg.types.json import Jsonb

from api.alert_query import (
    AlertFilter,
    Order,
    alert_detail,
    alert_page,
    alert_status,
    page_query,
    references_image,
    scope,
    tenant,
)
from api.auth import Principal
from api.pagination import cursor_position, decode_cursor, encode_cursor, split_page
from tests.api.conftest import Seeder

T0 = datetime(2024, 5, 1, 8, 0, 0, 123456, tzinfo=UTC)


def test_a_cursor_round_trips_its_position_exactly() -> None:
    for when, alert_id in [(T0, "a-1"), (T0.astimezone(timezone(timedelta(hours=8))), "v:x.y_z-9")]:
        cursor = encode_cursor(when, alert_id)
        assert cursor_position(cursor) == decode_cursor(cursor) == (when, alert_id)
        assert "=" not in cursor  # URL-safe, unpadded


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "forged",
    [
        "",
        "x" * 513,
        "not a cursor",
        _b64(b"{not json"),
        _b64(b'["2024-05-01T08:00:00+00:00"]'),  # wrong shape
        _b64(b'["yesterday", "a-1"]'),  # no timestamp
        _b64(b'["2024-05-01T08:00:00", "a-1"]'),  # naive: would be read in the server's zone
        _b64(b'["2024-05-01T08:00:00+00:00", "a\\u0000"]'),  # NUL: PostgreSQL text refuses it
        _b64(b'["2024-05-01T08:00:00+00:00", ""]'),
    ],
)
def test_a_forged_cursor_is_a_400_naming_the_cursor(forged: str) -> None:
    with pytest.raises(HTTPException) as refused:
        cursor_position(forged)
    assert refused.value.status_code == 400
    assert str(refused.value.detail).startswith("invalid cursor: ")


def _rows(n: int) -> list[dict[str, Any]]:
    return [{"created_at": T0 - timedelta(minutes=i), "alert_id": f"a-{i}"} for i in range(n)]


def test_the_extra_row_says_there_is_a_next_page_starting_after_the_last_served() -> None:
    page, next_cursor = split_page(_rows(3), 2, key="created_at", tiebreak="alert_id")
    assert [r["alert_id"] for r in page] == ["a-0", "a-1"]
    assert next_cursor is not None and decode_cursor(next_cursor) == (T0 - timedelta(minutes=1), "a-1")


@pytest.mark.parametrize("fetched", [0, 1, 2])
def test_without_the_extra_row_it_is_the_last_page(fetched: int) -> None:
    page, next_cursor = split_page(_rows(fetched), 2, key="created_at", tiebreak="alert_id")
    assert len(page) == fetched and next_cursor is None


def test_bureau_staff_see_every_enterprise_and_an_enterprise_only_its_own() -> None:
    assert scope(Principal("op", "operator")) is None
    assert scope(Principal("sup", "supervisor")) is None
    own = Principal("key", "enterprise", enterprise_id="ent-1")
    assert scope(own) == tenant(own) == "ent-1"


def test_an_enterprise_credential_without_an_enterprise_is_refused_never_widened() -> None:
    unbound = Principal("key", "enterprise")
    for confine in (scope, tenant):
        with pytest.raises(HTTPException) as refused:
            confine(unbound)
        assert refused.value.status_code == 403


# ------------------------------------------------------------------------------ the page query


def _parts(filters: AlertFilter, **kwargs: Any) -> tuple[list[str], str, list[Any]]:
    """The page query's AND-ed conditions, its ORDER BY ... LIMIT tail, and its parameters."""
    kwargs = {"tenant": None, "limit": 50, "cursor": None, **kwargs}
    query, params = page_query(filters, **kwargs)
    text = query.as_string()
    assert text.count("%s") == len(params), text  # every value travels as a parameter
    head, tail = text.split(" ORDER BY ")
    where = head.split(" AS page_key FROM alerts ")[1].strip()
    return _top_level_and(where.removeprefix("WHERE ")) if where else [], tail, params


def _top_level_and(where: str) -> list[str]:
    """`where` split at each AND outside parentheses (a subquery has ANDs of its own)."""
    conditions, depth, start = [], 0, 0
    for i, char in enumerate(where):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0 and where.startswith(" AND ", i):
            conditions.append(where[start:i])
            start = i + len(" AND ")
    return [*conditions, where[start:]]


def test_an_operator_page_reads_every_enterprise_newest_first() -> None:
    conditions, tail, params = _parts(AlertFilter(), limit=20)
    assert conditions == []
    assert tail == "created_at DESC, alert_id DESC LIMIT %s"
    assert params == [21]  # one row more says whether there is a next page


def test_a_tenant_is_confined_before_anything_it_asks_for_and_cannot_widen_it() -> None:
    conditions, _, params = _parts(AlertFilter(enterprise_id="ent-2", code="KITCHEN_RODENT"), tenant="ent-1")
    assert conditions == ['"alerts"."enterprise_id" = %s', '"code" = %s', '"enterprise_id" = %s']
    assert params == ["ent-1", "KITCHEN_RODENT", "ent-2", 51]  # both must hold: never another's rows


def test_every_filter_is_a_condition_with_its_value_as_a_parameter() -> None:
    naive, aware = datetime(2024, 5, 1, 8), datetime(2024, 6, 1, 16, tzinfo=timezone(timedelta(hours=8)))
    filters = AlertFilter(
        statuses=["open", "notified"],
        code="KITCHEN_RODENT",
        enterprise_id="ent-1",
        site_id="site-1",
        district="徐汇区",
        q="50%_off\\",
        tier=1,
        since=naive,
        until=aware,
        disposition="warning",
    )
    conditions, _, params = _parts(filters, limit=5)
    assert conditions[0] == "status = ANY(%s)"
    assert conditions[1:4] == ['"code" = %s', '"enterprise_id" = %s', '"site_id" = %s']
    assert conditions[4] == "site_id IN (SELECT site_id FROM sites WHERE district = %s)"
    assert len(conditions) == 10
    assert conditions[5].startswith("(summary ILIKE %s OR close_reason ILIKE %s")
    assert conditions[5].endswith("(r.description ILIKE %s OR r.decision_reason ILIKE %s)))")
    assert conditions[-4:] == ["tier = %s", "created_at >= %s", "created_at < %s", "disposition = %s"]
    like = "%50\\%\\_off\\\\%"  # LIKE's wildcards and its escape character taken literally
    assert params == [
        ["open", "notified"], "KITCHEN_RODENT", "ent-1", "site-1", "徐汇区", *[like] * 3, [], *[like] * 5,
        1, naive.replace(tzinfo=UTC), aware, "warning", 6,
    ]  # fmt: skip
    assert params[-4].tzinfo is UTC  # a time without an offset is UTC, not the session's zone


def test_a_cursor_continues_strictly_after_its_position() -> None:
    cursor = encode_cursor(T0, "a-9")
    conditions, _, params = _parts(AlertFilter(tier=2), tenant="ent-1", cursor=cursor, limit=2)
    assert conditions == ['"alerts"."enterprise_id" = %s', "tier = %s", "(created_at, alert_id) < (%s, %s)"]
    assert params == ["ent-1", 2, T0, "a-9", 3]


@pytest.mark.parametrize(
    ("order", "key"), [("created", "created_at"), ("ended", "COALESCE(closed_at, updated_at)")]
)
def test_the_order_key_is_what_the_page_is_sorted_by_resumed_from_and_the_cursor_made_of(
    order: Order, key: str
) -> None:
    query, _ = page_query(AlertFilter(), tenant=None, limit=1, cursor=encode_cursor(T0, "a-1"), order=order)
    text = query.as_string()
    assert f", {key} AS page_key FROM alerts " in text
    assert f"WHERE ({key}, alert_id) < (%s, %s) " in text
    assert text.endswith(f"ORDER BY {key} DESC, alert_id DESC LIMIT %s")


class _Untouchable:
    def connection(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a forged cursor must be refused before the database is asked")


async def test_a_forged_cursor_is_refused_before_any_query() -> None:
    with pytest.raises(HTTPException) as refused:
        await alert_page(_Untouchable(), AlertFilter(), tenant="ent-1", limit=5, cursor="nope")  # type: ignore[arg-type]
    assert refused.value.status_code == 400


# ---------------------------------------------------------------- the reads, in the real database


async def _walk(seed: Seeder, filters: AlertFilter, **kwargs: Any) -> list[str]:
    """Every alert id, page by page, following next_cursor."""
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(20):
        page = await alert_page(seed.pool, filters, limit=2, cursor=cursor, **kwargs)
        assert len(page.items) <= 2
        seen += [a.alert_id for a in page.items]
        cursor = page.next_cursor
        if cursor is None:
            return seen
        assert len(page.items) == 2
    raise AssertionError("paging did not end")


async def test_operator_and_enterprise_page_alike_and_the_enterprise_sees_only_its_own(
    seed: Seeder, uid: str
) -> None:
    other, other_site = f"ent-x{uid}", f"site-x{uid}"
    await seed.registry(other, other_site)
    minutes = [0, 1, 1, 2, 2]  # ties on created_at straddle the page boundaries
    created = {await seed.alert(n, created_at=T0 + timedelta(minutes=m)): m for n, m in enumerate(minutes)}
    theirs = [
        await seed.alert(10 + n, created_at=T0 + timedelta(minutes=n), enterprise=other, site=other_site)
        for n in range(3)
    ]
    expected = sorted(created, key=lambda a: (created[a], a), reverse=True)

    own = AlertFilter(enterprise_id=seed.enterprise)
    assert await _walk(seed, AlertFilter(), tenant=seed.enterprise) == expected
    assert await _walk(seed, own, tenant=None) == expected  # the operator's list, filtered
    assert await _walk(seed, own, tenant=seed.enterprise) == expected
    assert await _walk(seed, AlertFilter(enterprise_id=other), tenant=None) == theirs[::-1]
    assert await _walk(seed, AlertFilter(enterprise_id=other), tenant=seed.enterprise) == []
    assert await _walk(seed, AlertFilter(), tenant=other) == theirs[::-1]


async def test_history_pages_by_when_each_alert_ended(seed: Seeder) -> None:
    # Created in one order, ended in another; one has no closed_at, so updated_at counts.
    ended = {
        await seed.alert(0, created_at=T0, status="closed"): (T0 + timedelta(hours=5), "warning"),
        await seed.alert(1, created_at=T0 + timedelta(minutes=1), status="dismissed"): (None, "false_alarm"),
        await seed.alert(2, created_at=T0 + timedelta(minutes=2), status="closed"): (
            T0 + timedelta(hours=3),
            "warning",
        ),
        await seed.alert(3, created_at=T0 + timedelta(minutes=3), status="closed"): (
            T0 + timedelta(hours=5),
            "penalty",
        ),
    }
    still_open = await seed.alert(4, created_at=T0 + timedelta(minutes=4))
    async with seed.pool.connection() as conn:
        for alert_id, (closed_at, disposition) in ended.items():
            await conn.execute(
                "UPDATE alerts SET closed_at = %s, disposition = %s, updated_at = %s WHERE alert_id = %s",
                (closed_at, disposition, T0 + timedelta(hours=4), alert_id),
            )
    history = AlertFilter(statuses=("closed", "dismissed"))
    a0, a1, a2, a3 = ended
    seen = await _walk(seed, history, tenant=seed.enterprise, order="ended")
    assert seen == [a3, a0, a1, a2]  # 5h (tie: alert_id), 5h, 4h (updated_at), 3h
    assert still_open not in seen
    warnings = AlertFilter(statuses=("closed", "dismissed"), disposition="warning")
    assert await _walk(seed, warnings, tenant=seed.enterprise, order="ended") == [a0, a2]


async def test_detail_is_confined_and_the_enterprise_never_sees_our_broker_errors(
    seed: Seeder, uid: str
) -> None:
    alert_id = await seed.alert(0, created_at=T0)
    async with seed.pool.connection() as conn:
        for notice_id, enterprise in ((f"{alert_id}:opened", seed.enterprise), (f"{alert_id}:x", "ent-else")):
            await conn.execute(
                "INSERT INTO notices (notice_id, alert_id, enterprise_id, kind, payload, created_at)"
                " VALUES (%s, %s, %s, 'opened', %s, %s)",
                (notice_id, alert_id, enterprise, Jsonb({"kind": "opened"}), T0),
            )
        for channel, error in (("mqtt_notice", "broker refused: not authorised"), ("webhook", "HTTP 502")):
            await conn.execute(
                "INSERT INTO outbox (alert_id, enterprise_id, channel, payload, notice_id, attempts,"
                " last_error) VALUES (%s, %s, %s, '{}', %s, 1, %s)",
                (alert_id, seed.enterprise, channel, f"{alert_id}:opened", error),
            )

    staff = await alert_detail(seed.pool, alert_id, tenant=None)
    assert [n.notice_id for n in staff.notices] == [f"{alert_id}:opened", f"{alert_id}:x"]
    assert [d.last_error for d in staff.notices[0].deliveries] == [
        "broker refused: not authorised",
        "HTTP 502",
    ]

    own = await alert_detail(seed.pool, alert_id, tenant=seed.enterprise)
    assert [n.notice_id for n in own.notices] == [f"{alert_id}:opened"]  # only notices sent to it
    assert [(d.channel, d.last_error) for d in own.notices[0].deliveries] == [
        ("mqtt_notice", None),
        ("webhook", "HTTP 502"),  # its own endpoint's failure is its business
    ]
    assert own.model_dump(exclude={"notices"}) == staff.model_dump(exclude={"notices"})

    with pytest.raises(HTTPException) as refused:
        await alert_detail(seed.pool, alert_id, tenant=f"ent-x{uid}")
    assert refused.value.status_code == 404 and refused.value.detail == f"alert {alert_id} not found"


async def test_status_and_image_references_are_confined_to_the_tenant(seed: Seeder, uid: str) -> None:
    alert_id = await seed.alert(0, created_at=T0)
    sha = "ab" * 32
    async with seed.pool.connection() as conn:
        await conn.execute(
            "UPDATE alerts SET evidence = evidence || %s WHERE alert_id = %s",
            (Jsonb({"snapshot_sha256": sha}), alert_id),
        )
    stranger = f"ent-x{uid}"
    assert await alert_status(seed.pool, alert_id, tenant=seed.enterprise) == "open"
    assert await alert_status(seed.pool, alert_id, tenant=None) == "open"
    assert await alert_status(seed.pool, alert_id, tenant=stranger) is None
    assert await alert_status(seed.pool, f"{alert_id}-none", tenant=None) is None

    assert await references_image(seed.pool, alert_id, sha, tenant=seed.enterprise)
    assert await references_image(seed.pool, alert_id, sha, tenant=None)
    assert not await references_image(seed.pool, alert_id, sha, tenant=stranger)
    assert not await references_image(seed.pool, alert_id, "cd" * 32, tenant=None)


async def test_search_finds_what_the_operator_reads_code_names_and_registry_names(
    client: httpx.AsyncClient, seed: Seeder
) -> None:
    """The wall shows catalogue names and enterprise/site names, not the stored summary: a search
    for the Chinese name of a violation or for the enterprise's name finds the alert."""
    rodent = await seed.alert(1, created_at=T0, code="KITCHEN_RODENT", tier=1)
    smoking = await seed.alert(2, created_at=T0, code="KITCHEN_SMOKING", tier=2)
    found = await client.get("/api/v1/alerts", params={"enterprise_id": seed.enterprise, "q": "老鼠"})
    assert [i["alert_id"] for i in found.json()["items"]] == [rodent]
    found = await client.get("/api/v1/alerts", params={"enterprise_id": seed.enterprise, "q": "smoking"})
    assert [i["alert_id"] for i in found.json()["items"]] == [smoking]
