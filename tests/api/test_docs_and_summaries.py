"""Issue 18: the API docs on vendored assets (no CDN), and alert summaries in both languages."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import FastAPI
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from api import dashboard
from tests.api.conftest import Seeder, bearer, make_key

_URL = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|\b(?:spec-url|url)\s*:\s*["']([^"']+)["']""")


def _anonymous(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_docs_and_redoc_load_nothing_from_elsewhere(app: FastAPI) -> None:
    async with _anonymous(app) as c:
        for page in ("/docs", "/redoc"):
            r = await c.get(page)
            assert r.status_code == 200, page
            html = r.text
            # No absolute or protocol-relative URL: a closed network reaches no CDN, font or favicon host.
            assert not re.search(r"https?://|[\"']//", html), page
            found = {a or b for a, b in _URL.findall(html)}
            assets = {u for u in found if u.startswith("/dashboard/assets/vendor/")}
            assert len(assets) >= (3 if page == "/docs" else 2), (page, found)
            for asset in assets:
                got = await c.get(asset)
                assert got.status_code == 200 and len(got.content) > 100, asset
        assert (await c.get("/docs/oauth2-redirect")).status_code == 200
        assert (await c.get("/openapi.json")).status_code == 200
    # Vendored with their licences, as the chart library is.
    for name in (
        "swagger-ui/LICENSE",
        "swagger-ui/swagger-ui-bundle.js",
        "redoc/LICENSE",
        "redoc/redoc.standalone.js",
    ):
        assert f"vendor/{name}" in dashboard.STATIC, name


async def test_alerts_carry_their_summary_in_both_languages(
    app: FastAPI, pool: AsyncConnectionPool[Any], seed: Seeder, operator_key: str
) -> None:
    await seed.registry()
    now = datetime.now(UTC)
    freezer = await seed.alert(1, created_at=now, code="COLD_CHAIN_FREEZER_WARM")
    legacy = await seed.alert(2, created_at=now, code="KITCHEN_SMOKING")  # stored before params existed
    params = {
        "variant": "above",
        "metric": "temperature",
        "value": -8.84,
        "limit": -18.0,
        "unit": "°C",
        "held_s": 15,
    }
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE alerts SET evidence = %s WHERE alert_id = %s",
            (Jsonb({"rule": "threshold", "params": params}), freezer),
        )
    enterprise_key = await make_key(pool, "enterprise", seed.enterprise)
    async with _anonymous(app) as c:
        detail = (await c.get(f"/api/v1/alerts/{freezer}", headers=bearer(operator_key))).json()
        assert detail["summary_zh"] == "冷冻库温度 -8.8 ℃，高于 -18 ℃ 已持续 15 秒"
        assert detail["summary_en"] == "Freezer at -8.8 °C, above -18 °C for 15 s"
        assert detail["summary"] == "alert 1"  # the detector's own text, kept
        page = (
            await c.get(
                "/api/v1/alerts", params={"enterprise": seed.enterprise}, headers=bearer(operator_key)
            )
        ).json()
        by_id = {a["alert_id"]: a for a in page["items"]}
        assert by_id[freezer]["summary_zh"] == detail["summary_zh"]
        # No params: the code's catalogue name, never an empty or engineering text.
        assert (by_id[legacy]["summary_zh"], by_id[legacy]["summary_en"]) == (
            "后厨吸烟",
            "Smoking in the kitchen",
        )
        own = (await c.get(f"/api/v1/enterprise/alerts/{freezer}", headers=bearer(enterprise_key))).json()
        assert own["summary_zh"] == detail["summary_zh"] and own["summary_en"] == detail["summary_en"]
        doc = (await c.get("/openapi.json")).json()
    for model in ("AlertPublic", "EnterpriseAlert"):
        properties = doc["components"]["schemas"][model]["properties"]
        assert {"summary", "summary_zh", "summary_en"} <= set(properties), model
