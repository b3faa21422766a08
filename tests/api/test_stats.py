"""GET /api/v1/stats and /api/v1/stats/false-alarms through the app, over the real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from psycopg_pool import AsyncConnectionPool

from tests.alerts.test_stats import Scenario, seed_scenario

STATS = "/api/v1/stats"
FALSE_ALARMS = "/api/v1/stats/false-alarms"
RANGE = {"since": "2023-01-01T00:00:00Z", "until": "2023-04-01T00:00:00Z"}


@pytest.fixture
async def scenario(pool: AsyncConnectionPool[Any], uid: str) -> Scenario:
    return await seed_scenario(pool, uid)


def ok(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_by_month_for_one_enterprise(client: httpx.AsyncClient, scenario: Scenario) -> None:
    body = ok(await client.get(STATS, params={**RANGE, "group_by": "period", "enterprise_id": scenario.e1}))
    assert body["group_by"] == "period" and body["period"] == "month"
    assert datetime.fromisoformat(body["since"]) == datetime(2023, 1, 1, tzinfo=UTC)
    assert datetime.fromisoformat(body["until"]) == datetime(2023, 4, 1, tzinfo=UTC)
    assert body["rows"] == [
        {
            "key": "2023-01-01",
            "alerts": 3,
            "violations": 2,
            "warnings": 1,
            "penalty_cases": 1,
            "rectified": 2,
            "rectification_rate": 1.0,
            "mean_hours_to_rectify": pytest.approx(20.0),
            "repeat_offences": 1,
            "repeat_offence_rate": 0.5,
            "false_alarms": 1,
            "false_alarm_rate": pytest.approx(1 / 3),
        },
        {
            "key": "2023-02-01",
            "alerts": 3,
            "violations": 2,
            "warnings": 0,
            "penalty_cases": 1,
            "rectified": 1,
            "rectification_rate": 0.5,
            "mean_hours_to_rectify": pytest.approx(5.0),
            "repeat_offences": 1,
            "repeat_offence_rate": 0.5,
            "false_alarms": 1,
            "false_alarm_rate": pytest.approx(1 / 3),
        },
        {
            "key": "2023-03-01",
            "alerts": 1,
            "violations": 1,
            "warnings": 0,
            "penalty_cases": 0,
            "rectified": 0,
            "rectification_rate": 0.0,
            "mean_hours_to_rectify": None,
            "repeat_offences": 0,
            "repeat_offence_rate": 0.0,
            "false_alarms": 0,
            "false_alarm_rate": 0.0,
        },
    ]


async def test_group_by_and_filters(client: httpx.AsyncClient, scenario: Scenario) -> None:
    async def keys(**params: Any) -> list[tuple[str, int]]:
        rows = ok(await client.get(STATS, params={**RANGE, **params}))["rows"]
        return [
            (r["key"], r["alerts"]) for r in rows if scenario.uid in r["key"] or "enterprise_id" in params
        ]

    assert await keys(group_by="enterprise") == [(scenario.e1, 7), (scenario.e2, 2)]
    assert await keys(group_by="district") == [(scenario.d2, 2), (scenario.d1, 4)]
    assert await keys(group_by="district", enterprise_id=scenario.e1) == [("unassigned", 3), (scenario.d1, 4)]
    assert await keys(group_by="code", enterprise_id=scenario.e1) == [
        ("KITCHEN_NO_MASK", 4),
        ("KITCHEN_RODENT", 3),
    ]
    assert await keys(group_by="code", enterprise_id=scenario.e1, code="KITCHEN_RODENT") == [
        ("KITCHEN_RODENT", 3)
    ]
    # A Chinese district name passes validation and filters.
    assert await keys(group_by="enterprise", district=scenario.d1) == [(scenario.e1, 4)]
    assert await keys(group_by="enterprise", enterprise_id=scenario.e2, district="unassigned") == []
    assert await keys(group_by="period", period="week", enterprise_id=scenario.e1) == [
        ("2023-01-09", 1),
        ("2023-01-16", 1),
        ("2023-01-30", 2),
        ("2023-02-13", 2),
        ("2023-02-27", 1),
    ]
    # No offset means UTC; the same instants written in +08:00 give the same answer.
    day = {"group_by": "period", "period": "day", "enterprise_id": scenario.e1}
    utc = await client.get(
        STATS, params={**day, "since": "2023-01-31T00:00:00", "until": "2023-02-02T00:00:00"}
    )
    shanghai = await client.get(
        STATS, params={**day, "since": "2023-01-31T08:00:00+08:00", "until": "2023-02-02T08:00:00+08:00"}
    )
    assert [(r["key"], r["alerts"]) for r in ok(utc)["rows"]] == [("2023-01-31", 1), ("2023-02-01", 1)]
    assert ok(shanghai)["rows"] == ok(utc)["rows"]


async def test_default_range_is_the_last_30_days(
    client: httpx.AsyncClient, pool: AsyncConnectionPool[Any], uid: str
) -> None:
    sc = Scenario(uid)
    async with pool.connection() as conn:
        await conn.execute("INSERT INTO enterprises (enterprise_id, name) VALUES (%s, 'x')", (sc.e1,))
        await conn.execute(
            "INSERT INTO sites (site_id, enterprise_id, name) VALUES (%s, %s, 'x')", (sc.s1, sc.e1)
        )
    now = datetime.now(UTC)
    for n, age in enumerate((timedelta(days=31), timedelta(days=29), timedelta(hours=1))):
        async with pool.connection() as conn:
            await conn.execute(
                "INSERT INTO alerts (alert_id, code, enterprise_id, site_id, source_kind, source_id, status,"
                " severity, tier, summary, detector, window_start, first_seen, last_seen, deadline,"
                " created_at) VALUES (%s, 'KITCHEN_NO_MASK', %s, %s, 'camera', %s, 'open', 'minor', 2,"
                " 's', 'd', %s, %s, %s, %s, %s)",
                (f"st-{uid}-{n}", sc.e1, sc.s1, f"cam-{uid}-{n}", *[now - age] * 5),
            )
    body = ok(await client.get(STATS, params={"group_by": "enterprise", "enterprise_id": sc.e1}))
    since, until = datetime.fromisoformat(body["since"]), datetime.fromisoformat(body["until"])
    assert until - since == timedelta(days=30)
    assert now <= until <= datetime.now(UTC)
    assert [(r["key"], r["alerts"]) for r in body["rows"]] == [(sc.e1, 2)]
    # Only `since`: until is now. Only `until`: since is 30 days before it.
    body = ok(await client.get(STATS, params={"group_by": "enterprise", "enterprise_id": sc.e1,
                                               "since": (now - timedelta(days=40)).isoformat()}))  # fmt: skip
    assert [r["alerts"] for r in body["rows"]] == [3]
    body = ok(await client.get(STATS, params={"group_by": "enterprise", "enterprise_id": sc.e1,
                                               "until": (now - timedelta(days=2)).isoformat()}))  # fmt: skip
    assert [r["alerts"] for r in body["rows"]] == [2]  # 31 and 29 days old, not the 1 hour old one
    assert datetime.fromisoformat(body["until"]) - datetime.fromisoformat(body["since"]) == timedelta(days=30)
    # The default grouping is by month.
    body = ok(await client.get(STATS, params={"enterprise_id": sc.e1}))
    assert body["group_by"] == "period" and body["period"] == "month"
    assert sum(r["alerts"] for r in body["rows"]) == 2


async def test_empty_result_is_an_empty_list(client: httpx.AsyncClient, uid: str) -> None:
    body = ok(await client.get(STATS, params={**RANGE, "group_by": "code", "enterprise_id": f"none-{uid}"}))
    assert body["rows"] == []


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"since": "2023-02-01T00:00:00Z", "until": "2023-02-01T00:00:00Z"}, "must be before"),
        ({"since": "2023-02-02T00:00:00Z", "until": "2023-02-01T00:00:00Z"}, "must be before"),
        ({"since": "2023-02-01T08:00:00+08:00", "until": "2023-02-01T00:00:00"}, "must be before"),
        ({"since": "2017-01-01T00:00:00Z", "until": "2023-01-01T00:00:00Z"}, "five years"),
        ({"since": "2010-01-01T00:00:00Z"}, "five years"),  # until defaults to now
        ({"until": "2000-01-01T00:00:00Z", "since": "1990-01-01T00:00:00Z"}, "five years"),
        ({"until": "0001-01-02T00:00:00Z"}, "too early"),  # no since 30 days before: 422, not 500
    ],
)
async def test_bad_range_is_422_with_a_message(
    client: httpx.AsyncClient, params: dict[str, str], message: str
) -> None:
    for path in (STATS, FALSE_ALARMS):
        r = await client.get(path, params=params)
        assert r.status_code == 422, r.text
        assert message in r.json()["detail"]


async def test_five_years_exactly_is_allowed(client: httpx.AsyncClient, uid: str) -> None:
    params = {
        "since": "2018-01-01T00:00:00Z",
        "until": "2023-01-01T00:00:00Z",
        "enterprise_id": f"none-{uid}",
    }
    assert ok(await client.get(STATS, params=params))["rows"] == []


@pytest.mark.parametrize(
    "params",
    [
        {"group_by": "site"},
        {"group_by": ""},
        {"period": "year"},
        {"since": "yesterday"},
        {"until": "2023-13-01T00:00:00Z"},
        {"enterprise_id": "bad id"},
        {"enterprise_id": "x" * 65},
        {"enterprise_id": "a\x00b"},
        {"code": "KITCHEN-NO-MASK"},
        {"code": "a" * 65},
        {"district": "a\x00b"},
        {"district": "d" * 65},
        {"district": "x;drop"},
        {"district": ""},
    ],
)
async def test_bad_params_are_422_never_500(client: httpx.AsyncClient, params: dict[str, str]) -> None:
    r = await client.get(STATS, params=params)
    assert r.status_code == 422, r.text


@pytest.mark.parametrize(
    "params",
    [
        {"by": "camera"},
        {"by": ""},
        {"limit": 0},
        {"limit": 1001},
        {"enterprise_id": "bad id"},
        {"since": "x"},
    ],
)
async def test_false_alarm_bad_params_are_422(client: httpx.AsyncClient, params: dict[str, Any]) -> None:
    assert (await client.get(FALSE_ALARMS, params=params)).status_code == 422


async def test_false_alarms(client: httpx.AsyncClient, scenario: Scenario) -> None:
    uid = scenario.uid
    body = ok(await client.get(FALSE_ALARMS, params={**RANGE, "by": "detector"}))
    assert body["by"] == "detector"
    assert [r for r in body["rows"] if uid in r["key"]] == [
        {"key": f"rodent:{uid}", "alerts": 2, "false_alarms": 2, "rate": 1.0},
        {"key": f"telemetry:{uid}", "alerts": 2, "false_alarms": 1, "rate": 0.5},
        {"key": f"ppe:{uid}", "alerts": 5, "false_alarms": 0, "rate": 0.0},
    ]
    # `by` defaults to the source (camera or device).
    body = ok(await client.get(FALSE_ALARMS, params={**RANGE, "enterprise_id": scenario.e1}))
    assert body["by"] == "source"
    assert [(r["key"], r["alerts"], r["false_alarms"]) for r in body["rows"]] == [
        (f"camera:cam-a-{uid}", 3, 2),
        (f"camera:cam-b-{uid}", 2, 0),
        (f"camera:cam-c-{uid}", 1, 0),
        (f"device:dev-d-{uid}", 1, 0),
    ]
    body = ok(await client.get(FALSE_ALARMS, params={**RANGE, "enterprise_id": scenario.e1, "limit": 2}))
    assert [r["key"] for r in body["rows"]] == [f"camera:cam-a-{uid}", f"camera:cam-b-{uid}"]


@pytest.mark.parametrize("path", [STATS, FALSE_ALARMS])
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-token"}])
async def test_refused_without_the_right_token(app: FastAPI, path: str, headers: dict[str, str]) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as anonymous:
        r = await anonymous.get(path, params=RANGE, headers=headers)
    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"] == "Bearer"


async def test_documented_in_openapi(client: httpx.AsyncClient) -> None:
    doc = ok(await client.get("/openapi.json"))
    for path in (STATS, FALSE_ALARMS):
        responses = doc["paths"][path]["get"]["responses"]
        assert {"200", "401", "422"} <= set(responses)
    params = {p["name"] for p in doc["paths"][STATS]["get"]["parameters"]}
    assert params == {"group_by", "period", "since", "until", "enterprise_id", "district", "code"}
