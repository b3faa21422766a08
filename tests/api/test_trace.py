"""The sensor trace of an alert, over readings in the real telemetry table: the window around the
alert, date_bin() buckets when there are too many points, and tenancy. Every test with a database
runs on native daily partitions and on a TimescaleDB hypertable (`backend`, tests/databases.py),
with the same expected answers; on TimescaleDB, date_bin() is also checked against time_bucket()."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from api.trace import MAX_POINTS, bucket_width
from ingest.partitions import Partitions
from ingest.storage import Row, write_rows
from tests.api.conftest import TOKEN, Seeder, bearer, make_key
from vigil.settings import Settings

pytestmark = pytest.mark.integration

# Recent, on whole seconds: the store's partitions around today exist or are created here.
T = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)


def ms(at: datetime) -> int:
    return int(at.timestamp()) * 1000


# The API fixtures of tests/api/conftest.py (app, client, seed) over the backend's database.
@pytest.fixture
def api_settings(settings: Settings, backend_url: str) -> Settings:
    return settings.model_copy(update={"database_url": backend_url, "api_token": SecretStr(TOKEN)})


@pytest.fixture
def pool(backend_pool: Any) -> Any:
    return backend_pool


async def device_alert(
    seed: Seeder, device: str, *, first: datetime, last: datetime, cleared: datetime | None = None, n: int = 0
) -> str:
    alert_id = f"d-{seed.uid}-{n}"
    async with seed.pool.connection() as conn:
        await conn.execute(
            "INSERT INTO alerts (alert_id, code, enterprise_id, site_id, source_kind, source_id, status,"
            " severity, tier, summary, detector, window_start, first_seen, last_seen, cleared_at, deadline)"
            " VALUES (%s, 'COLD_CHAIN_FREEZER_WARM', %s, %s, 'device', %s, 'open', 'major', 2,"
            " 'freezer warm', 'telemetry:cold_chain', %s, %s, %s, %s, %s)",
            (
                alert_id,
                seed.enterprise,
                seed.site,
                device,
                first,
                first,
                last,
                cleared,
                last + timedelta(hours=4),
            ),
        )
    return alert_id


async def store(pool: Any, rows: list[Row]) -> None:
    partitions = Partitions()
    async with pool.connection() as conn:
        await partitions.load(conn)
    await partitions.ensure(pool, {row[2].date() for row in rows})
    assert await write_rows(pool, rows) == len(rows)


async def test_the_window_runs_from_before_the_alert_to_after_it_cleared(
    client: httpx.AsyncClient, seed: Seeder, uid: str
) -> None:
    device = f"dev-{uid}"
    first, last, cleared = T, T + timedelta(minutes=5), T + timedelta(minutes=10)
    alert_id = await device_alert(seed, device, first=first, last=last, cleared=cleared)
    # One reading a minute from an hour before to an hour after, two metrics; and another
    # enterprise's reading under the same device id, which is not this alert's.
    minutes = range(-60, 71)
    await store(
        seed.pool,
        [(device, seed.enterprise, T + timedelta(minutes=m), "temperature", float(m)) for m in minutes]
        + [(device, seed.enterprise, T + timedelta(minutes=m), "door", float(m % 2)) for m in minutes]
        + [(device, f"elsewhere-{uid}", T + timedelta(minutes=3, seconds=30), "temperature", 99.0)],
    )

    response = await client.get(f"/api/v1/alerts/{alert_id}/trace")
    assert response.status_code == 200, response.text
    trace = response.json()
    # Defaults: 30 minutes before first_seen, 10 minutes after cleared_at (not last_seen).
    assert trace["start_ms"] == ms(first - timedelta(minutes=30))
    assert trace["end_ms"] == ms(cleared + timedelta(minutes=10))
    assert trace["device_id"] == device and trace["source_kind"] == "device"
    assert trace["bucket_ms"] is None and trace["truncated"] is False
    assert set(trace["series"]) == {"temperature", "door"}
    temperature = trace["series"]["temperature"]
    assert temperature == [[ms(T + timedelta(minutes=m)), float(m)] for m in range(-30, 21)]

    narrow = (await client.get(f"/api/v1/alerts/{alert_id}/trace?before_s=60&after_s=0")).json()
    assert [p[1] for p in narrow["series"]["temperature"]] == [float(m) for m in range(-1, 11)]
    for bad in ("before_s=-1", "after_s=86401", "before_s=abc"):
        assert (await client.get(f"/api/v1/alerts/{alert_id}/trace?{bad}")).status_code == 422


async def test_too_many_points_are_averaged_into_date_bin_buckets(
    client: httpx.AsyncClient, seed: Seeder, uid: str
) -> None:
    device = f"dev-{uid}"
    # An alert an hour and a half long with a reading a second: 7,800 points in the default window.
    first, last = T - timedelta(minutes=90), T
    alert_id = await device_alert(seed, device, first=first, last=last)
    start, end = first - timedelta(minutes=30), last + timedelta(minutes=10)
    seconds = int((end - start).total_seconds())
    ent = seed.enterprise
    every_second = [
        (device, ent, start + timedelta(seconds=s), "temperature", float(s)) for s in range(seconds + 1)
    ]
    every_ten_minutes = [(device, ent, start + timedelta(minutes=m), "door", 1.0) for m in range(0, 130, 10)]
    await store(seed.pool, every_second + every_ten_minutes)

    trace = (await client.get(f"/api/v1/alerts/{alert_id}/trace")).json()
    width = bucket_width(start, end)
    assert width == timedelta(seconds=4)  # 7,800 s into at most 2,000 whole-second buckets
    assert trace["bucket_ms"] == 4000
    temperature = trace["series"]["temperature"]
    assert len(temperature) <= MAX_POINTS
    assert len(temperature) == seconds // 4 + 1
    # Each point: the bucket's start and the average of its readings (s, s+1, s+2, s+3).
    assert temperature[0] == [ms(start), 1.5]
    assert temperature[1] == [ms(start) + 4000, 5.5]
    assert temperature[-1] == [ms(start) + (seconds // 4) * 4000, float(seconds)]
    # Every metric in the same buckets, even one that had few readings.
    assert all((p[0] - ms(start)) % 4000 == 0 for p in trace["series"]["door"])
    assert len(trace["series"]["door"]) == 13


def test_bucket_width_never_exceeds_the_point_budget() -> None:
    start = datetime(2024, 5, 1, tzinfo=UTC)
    for span_s in (2000, 2001, 3999, 4000, 7800, 86_400, 7 * 86_400):
        end = start + timedelta(seconds=span_s)
        width = bucket_width(start, end)
        assert width.total_seconds() >= 1 and width.total_seconds() == int(width.total_seconds())
        assert span_s // int(width.total_seconds()) + 1 <= MAX_POINTS


async def test_tenancy_camera_alerts_and_long_alerts(
    client: httpx.AsyncClient, seed: Seeder, uid: str, pool: Any
) -> None:
    device = f"dev-{uid}"
    alert_id = await device_alert(seed, device, first=T, last=T + timedelta(minutes=1))
    await store(pool, [(device, seed.enterprise, T, "temperature", -5.0)])
    other = f"other-{uid}"
    await seed.registry(other, f"site-other-{uid}")
    own = bearer(await make_key(pool, "enterprise", seed.enterprise))
    stranger = bearer(await make_key(pool, "enterprise", other))
    supervisor = bearer(await make_key(pool, "supervisor"))
    url = f"/api/v1/alerts/{alert_id}/trace"

    for headers in (own, supervisor, {}):  # {}: the operator token of the client fixture
        response = await client.get(url, headers=headers)
        assert response.status_code == 200, response.text
        assert response.json()["series"] == {"temperature": [[ms(T), -5.0]]}
    response = await client.get(url, headers=stranger)
    assert response.status_code == 404  # as if it did not exist
    assert (await client.get(f"/api/v1/alerts/nope-{uid}/trace")).status_code == 404
    assert (await client.get(url, headers={"Authorization": "Bearer nope"})).status_code == 401

    camera = await seed.alert(1, created_at=T)
    trace = (await client.get(f"/api/v1/alerts/{camera}/trace")).json()
    assert trace["source_kind"] == "camera" and trace["device_id"] is None and trace["series"] == {}

    week_long = await device_alert(seed, f"dev2-{uid}", first=T - timedelta(days=9), last=T, n=1)
    trace = (await client.get(f"/api/v1/alerts/{week_long}/trace")).json()
    assert trace["truncated"] is True
    assert trace["end_ms"] - trace["start_ms"] == 7 * 86_400_000
    assert trace["bucket_ms"] is None  # one reading in that week: nothing to average


async def test_the_trace_is_documented_with_an_example(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    operation = spec["paths"]["/api/v1/alerts/{alert_id}/trace"]["get"]
    assert {"200", "401", "404"} <= set(operation["responses"])
    schema = spec["components"]["schemas"]["SensorTrace"]
    assert schema["examples"][0]["series"]["temperature"]
    stream = spec["paths"]["/api/v1/stream"]["get"]
    assert "text/event-stream" in stream["responses"]["200"]["content"]


async def test_date_bin_buckets_match_on_both_backends_and_time_bucket(
    backend: str, pool: Any, uid: str
) -> None:
    """The trace's date_bin() against buckets computed here, for the strides and origins the API and
    the benchmark queries use; on TimescaleDB, time_bucket() (its idiom) gives the same answer, and
    so do both once the chunk is compressed (nine days back: the policy compresses after seven)."""
    device = f"dev-{uid}"
    start = T - timedelta(days=9, seconds=3)  # off any whole minute
    rows: list[Row] = [
        (device, f"ent-{uid}", start + timedelta(seconds=7 * i), "temperature", float(i)) for i in range(1030)
    ]
    await store(pool, rows)
    cases = [
        (timedelta(seconds=4), start),  # the trace: whole seconds from the window's start
        (timedelta(minutes=5), datetime(2000, 1, 3, tzinfo=UTC)),  # the benchmark: Monday origin
        (timedelta(hours=1), datetime(2000, 1, 3, tzinfo=UTC)),
    ]
    compressed = [False, True] if backend == "timescaledb" else [False]
    for (stride, origin), compress in ((case, c) for c in compressed for case in cases):
        if compress:
            async with pool.connection() as conn:
                cur = await conn.execute(
                    "SELECT compress_chunk(c, if_not_compressed => true)"
                    " FROM show_chunks('telemetry', newer_than => %s, older_than => %s) c",
                    (start - timedelta(days=1), start + timedelta(days=2)),
                )
                assert await cur.fetchall()  # the chunk(s) of these readings
        expected: dict[datetime, list[float]] = defaultdict(list)
        for _, _, ts, _, value in rows:
            expected[origin + (ts - origin) // stride * stride].append(value)
        want = [(bucket, sum(v) / len(v)) for bucket, v in sorted(expected.items())]
        functions = ["date_bin"] + (["time_bucket"] if backend == "timescaledb" else [])
        for function in functions:
            # function: one of two fixed names above, not input.
            query = (
                f"SELECT {function}(%s, ts, %s) AS b, avg(value) FROM telemetry"
                " WHERE device_id = %s AND ts >= %s GROUP BY b ORDER BY b"
            )
            async with pool.connection() as conn:
                got = await (await conn.execute(query, (stride, origin, device, start))).fetchall()
            assert [(b, pytest.approx(v)) for b, v in want] == got, (function, stride, compress)
