"""Exports, read back with real readers: XLSX by openpyxl, CSV by the csv module. Headers in
Chinese (English with ?lang=en), the list's filters honoured, times in the bureau's zone, an
enterprise's export only its own, and a large export streamed with bounded memory."""

from __future__ import annotations

import asyncio
import csv
import io
import tracemalloc
from datetime import datetime, timedelta
from typing import Any

import httpx
import openpyxl
import pytest
from psycopg_pool import AsyncConnectionPool

from api import create_app
from tests.api.conftest import T0, Seeder, bearer, make_key
from vigil.http import EmbeddedHttpServer
from vigil.i18n import text
from vigil.settings import Settings

# T0 (08:00 UTC) in Asia/Shanghai, the default zone.
T0_LOCAL = datetime(2024, 5, 1, 16, 0)


def headers(prefix: str, keys: list[str], language: str = "zh-CN") -> list[str]:
    return [text(f"{prefix}.{k}", language, "exports") for k in keys]  # type: ignore[arg-type]


def workbook(r: httpx.Response) -> openpyxl.Workbook:
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/vnd.openxmlformats")
    assert "attachment" in r.headers["content-disposition"]
    return openpyxl.load_workbook(io.BytesIO(r.content), read_only=True)


def csv_rows(r: httpx.Response) -> list[list[str]]:
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert r.content.startswith("\ufeff".encode()), "Excel needs the BOM to read UTF-8"
    return list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))


@pytest.fixture
async def seeded(seed: Seeder, pool: AsyncConnectionPool[Any]) -> Seeder:
    """Two alerts of this enterprise in a Chinese-named district, one of another enterprise."""
    async with pool.connection() as conn:
        await conn.execute("UPDATE sites SET district = '徐汇区' WHERE site_id = %s", (seed.site,))
        await conn.execute(
            "UPDATE enterprises SET name = %s WHERE enterprise_id = %s",
            (f"老王饭店{seed.uid}", seed.enterprise),
        )
    await seed.alert(1, created_at=T0)
    await seed.alert(2, created_at=T0 + timedelta(hours=1), code="KITCHEN_RODENT", tier=1, status="closed")
    other = f"other-{seed.uid}"
    await seed.registry(other, f"site-{other}")
    await seed.alert(3, created_at=T0, enterprise=other, site=f"site-{other}")
    return seed


async def test_operator_xlsx_has_chinese_headers_and_honours_filters(
    client: httpx.AsyncClient, seeded: Seeder
) -> None:
    r = await client.get("/api/v1/alerts.xlsx", params={"enterprise_id": seeded.enterprise})
    sheet = workbook(r).worksheets[0]
    rows = list(sheet.iter_rows(values_only=True))
    header = headers(
        "column",
        ["alert_id", "violation", "code", "tier", "severity", "status", "enterprise", "site", "district"],
    )
    assert list(rows[0][: len(header)]) == header
    assert rows[0][0] == "告警编号"
    by_id = {row[0]: row for row in rows[1:]}
    assert set(by_id) == {f"a-{seeded.uid}-01", f"a-{seeded.uid}-02"}  # not the other enterprise's
    first = by_id[f"a-{seeded.uid}-01"]
    assert first[1] == "后厨人员未佩戴口罩" and first[5] == "待处理"
    assert first[6] == f"老王饭店{seeded.uid}" and first[8] == "徐汇区"
    assert first[10] == T0_LOCAL  # a real date in Excel, in Asia/Shanghai

    # The list's filters: code, tier and status each narrow it.
    for params, expected in (
        ({"code": "KITCHEN_RODENT"}, {f"a-{seeded.uid}-02"}),
        ({"tier": 2}, {f"a-{seeded.uid}-01"}),
        ({"status": ["closed", "dismissed"]}, {f"a-{seeded.uid}-02"}),
        ({"since": "2024-05-01T08:30:00Z"}, {f"a-{seeded.uid}-02"}),
    ):
        r = await client.get("/api/v1/alerts.xlsx", params={"enterprise_id": seeded.enterprise, **params})
        found = {row[0] for row in list(workbook(r).worksheets[0].iter_rows(values_only=True))[1:]}
        assert found == expected, params


async def test_operator_csv_has_a_bom_and_english_on_request(
    client: httpx.AsyncClient, seeded: Seeder
) -> None:
    rows = csv_rows(await client.get("/api/v1/alerts.csv", params={"site_id": seeded.site}))
    assert rows[0][:3] == ["告警编号", "违规类型", "违规代码"]
    assert [r[0] for r in rows[1:]] == [f"a-{seeded.uid}-02", f"a-{seeded.uid}-01"]  # newest first
    assert rows[2][10] == "2024-05-01 16:00"  # 24-hour, the bureau's zone
    english = csv_rows(await client.get("/api/v1/alerts.csv", params={"site_id": seeded.site, "lang": "en"}))
    assert english[0][:3] == ["Alert ID", "Violation", "Code"]
    assert english[2][1] == "Kitchen staff without a mask" and english[2][5] == "Open"
    assert (await client.get("/api/v1/alerts.csv", params={"lang": "fr"})).status_code == 422


async def test_an_enterprise_exports_only_its_own(
    client: httpx.AsyncClient, seeded: Seeder, pool: AsyncConnectionPool[Any]
) -> None:
    own = bearer(await make_key(pool, "enterprise", seeded.enterprise))
    rows = csv_rows(await client.get("/api/v1/enterprise/alerts.csv", headers=own))
    assert {r[0] for r in rows[1:]} == {f"a-{seeded.uid}-01", f"a-{seeded.uid}-02"}
    r = await client.get("/api/v1/enterprise/alerts.xlsx", headers=own, params={"code": "KITCHEN_RODENT"})
    assert [row[0] for row in list(workbook(r).worksheets[0].iter_rows(values_only=True))[1:]] == [
        f"a-{seeded.uid}-02"
    ]
    # Another enterprise's filter is not a parameter of the enterprise's export: it changes nothing.
    r = await client.get(
        "/api/v1/enterprise/alerts.csv", headers=own, params={"enterprise_id": f"other-{seeded.uid}"}
    )
    assert {row[0] for row in csv_rows(r)[1:]} == {f"a-{seeded.uid}-01", f"a-{seeded.uid}-02"}
    # The bureau's exports are not an enterprise's.
    for path in ("/api/v1/alerts.csv", "/api/v1/alerts.xlsx", "/api/v1/stats.csv", "/api/v1/stats.xlsx"):
        assert (await client.get(path, headers=own)).status_code == 403, path
    # And the bureau's credentials are not an enterprise's.
    assert (await client.get("/api/v1/enterprise/alerts.csv")).status_code == 403


async def test_stats_export_has_a_sheet_per_grouping(client: httpx.AsyncClient, seeded: Seeder) -> None:
    query = {
        "since": "2024-05-01T00:00:00Z",
        "until": "2024-05-02T00:00:00Z",
        "enterprise_id": seeded.enterprise,
    }
    book = workbook(await client.get("/api/v1/stats.xlsx", params=query))
    assert book.sheetnames == ["按周期", "按辖区", "按企业", "按违规类型"]
    by_code = list(book["按违规类型"].iter_rows(values_only=True))
    assert by_code[0][:3] == ("违规类型", "告警数", "违规数")
    assert {row[0]: row[1] for row in by_code[1:]} == {"后厨人员未佩戴口罩": 1, "后厨出现老鼠": 1}
    by_enterprise = list(book["按企业"].iter_rows(values_only=True))
    assert by_enterprise[1][:2] == (f"老王饭店{seeded.uid}", 2)
    rows = csv_rows(
        await client.get("/api/v1/stats.csv", params={**query, "group_by": "district", "lang": "en"})
    )
    assert rows[0][:2] == ["District", "Alerts"] and rows[1][:2] == ["徐汇区", "2"]
    bad = {**query, "since": "2024-05-03T00:00:00Z"}
    assert (await client.get("/api/v1/stats.csv", params=bad)).status_code == 422


# ---------------------------------------------------------------------------------- large export

LARGE = 20_000


@pytest.fixture
async def many_alerts(pool: AsyncConnectionPool[Any], seed: Seeder) -> Any:
    """LARGE closed alerts of one enterprise, inserted in one statement; removed afterwards."""
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO alerts (alert_id, code, enterprise_id, site_id, source_kind, source_id, status,"
            " severity, tier, summary, evidence, detector, window_start, first_seen, last_seen, deadline,"
            " created_at, updated_at, closed_at)"
            " SELECT %(uid)s || '-' || g, 'KITCHEN_NO_MASK', %(ent)s, %(site)s, 'camera', 'cam-' || g,"
            " 'closed', 'minor', 2, 'large export ' || g, '{}'::jsonb, 'vision:test', t, t, t,"
            " t + interval '1 day', t, t, t + interval '2 hours'"
            " FROM generate_series(1, %(n)s) g,"
            " LATERAL (SELECT %(t0)s::timestamptz - g * interval '1 minute' AS t) x",
            {"uid": f"big-{seed.uid}", "ent": seed.enterprise, "site": seed.site, "n": LARGE, "t0": T0},
        )
    try:
        yield seed
    finally:
        async with pool.connection() as conn, conn.transaction():
            # Nothing references these rows, but each deleted alert would still run the foreign-key
            # checks of every table that may (alerts.prior_alert_id among them, unindexed: a scan
            # of the whole table per row, ~15 s here); the test database's superuser skips them.
            await conn.execute("SET LOCAL session_replication_role = replica")
            await conn.execute("DELETE FROM alerts WHERE enterprise_id = %s", (seed.enterprise,))


async def _download(url: str, params: dict[str, str]) -> tuple[int, int, int]:
    """Streams a download, keeping none of it: (bytes, CSV lines, tracemalloc peak during it)."""
    tracemalloc.reset_peak()
    size = lines = 0
    async with (
        httpx.AsyncClient(
            timeout=120, headers={"Authorization": "Bearer test-operator-token-0123456789abcdef"}
        ) as c,
        c.stream("GET", url, params=params) as r,
    ):
        assert r.status_code == 200
        async for chunk in r.aiter_bytes():
            size += len(chunk)
            lines += chunk.count(b"\n")
    return size, lines, tracemalloc.get_traced_memory()[1]


@pytest.mark.timeout(600)
async def test_a_large_export_streams_in_bounded_memory(api_settings: Settings, many_alerts: Seeder) -> None:
    # Over real HTTP (an in-process transport would buffer the whole body), with the server in
    # this process, so tracemalloc sees the server's allocations: the database rows, the rendered
    # rows, the CSV and XLSX writers.
    server = EmbeddedHttpServer(create_app(api_settings), host="127.0.0.1", port=0, label="export API")
    await server.start(lambda coro, name: asyncio.create_task(coro, name=name))
    params = {"enterprise_id": many_alerts.enterprise}
    tracemalloc.start()
    try:
        # Warm up: the first request imports and builds what every later one reuses.
        for fmt in ("csv", "xlsx"):
            await _download(f"{server.url}/api/v1/alerts.{fmt}", {**params, "code": "KITCHEN_RODENT"})
        base = tracemalloc.get_traced_memory()[0]
        csv_size, csv_lines, csv_peak = await _download(f"{server.url}/api/v1/alerts.csv", params)
        xlsx_size, _, xlsx_peak = await _download(f"{server.url}/api/v1/alerts.xlsx", params)
    finally:
        tracemalloc.stop()
        await server.shutdown()
    assert csv_lines == LARGE + 1  # every alert and the header
    growth = {"csv": csv_peak - base, "xlsx": xlsx_peak - base}
    print(
        f"{LARGE} alerts: CSV {csv_size / 2**20:.1f} MiB, XLSX {xlsx_size / 2**20:.1f} MiB;"
        f" peak traced growth CSV {growth['csv'] / 2**20:.1f} MiB, XLSX {growth['xlsx'] / 2**20:.1f} MiB"
    )
    # A page of 500 rows is about a megabyte as dicts; all 20,000 would be tens, and the CSV alone
    # is over 5 MiB: the bound (4 MiB) is below what holding the export would take.
    assert csv_size > 5 * 2**20
    for fmt, grown in growth.items():
        assert grown < 4 * 2**20, f"{fmt} export grew traced memory by {grown / 2**20:.1f} MiB"


async def test_a_value_the_catalogue_does_not_name_exports_as_itself(
    client: httpx.AsyncClient, seeded: Seeder, pool: AsyncConnectionPool[Any]
) -> None:
    """A row written by another version (a severity this one does not know) must not break the
    stream half-way: it exports with the stored value."""
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE alerts SET severity = 'surprising' WHERE alert_id = %s", (f"a-{seeded.uid}-01",)
        )
    rows = csv_rows(await client.get("/api/v1/alerts.csv", params={"site_id": seeded.site}))
    by_id = {r[0]: r for r in rows[1:]}
    assert by_id[f"a-{seeded.uid}-01"][4] == "surprising"
    assert by_id[f"a-{seeded.uid}-02"][4] != "minor"  # a known severity is still labelled
