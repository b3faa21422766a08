"""Printed documents, read back by a PDF text extractor (pypdf): the rectification notice and the
monthly report carry their Chinese text in an embedded CJK font; tenancy holds on the notice; a
document that cannot be issued (no bureau name, no font) is a 503 that says why."""

from __future__ import annotations

import io
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import cv2
import httpx
import numpy as np
import pypdf
import pytest
from fastapi import FastAPI
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from api import create_app
from api.pdf import FontUnavailable, find_font
from tests.api.conftest import AUTH, T0, Seeder, bearer, make_key
from vigil.settings import DEMO_BUREAU_NAME, Settings


def pdf_text(r: httpx.Response) -> tuple[str, pypdf.PdfReader]:
    """The document's text with whitespace removed (extractors space CJK glyphs apart)."""
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/pdf"
    reader = pypdf.PdfReader(io.BytesIO(r.content))
    # pypdf pads some CJK runs with NULs; neither is part of the text.
    return re.sub(r"[\s\x00]+", "", "".join(page.extract_text() for page in reader.pages)), reader


@pytest.fixture
async def alert_with_evidence(seed: Seeder, pool: AsyncConnectionPool[Any], app: FastAPI) -> str:
    ok, jpeg = cv2.imencode(".jpg", np.full((120, 160, 3), 90, np.uint8))
    assert ok
    sha256 = app.state.evidence.put(jpeg.tobytes())
    alert_id = await seed.alert(1, created_at=T0)
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE enterprises SET name = %s WHERE enterprise_id = %s",
            (f"老王饭店{seed.uid}", seed.enterprise),
        )
        await conn.execute(
            "UPDATE sites SET name = '后厨一号', district = '徐汇区' WHERE site_id = %s", (seed.site,)
        )
        await conn.execute(
            "UPDATE alerts SET evidence = %s, leniency = 'first_offence' WHERE alert_id = %s",
            (Jsonb({"snapshot_sha256": sha256}), alert_id),
        )
    return alert_id


async def test_the_notice_carries_the_alert_in_chinese(
    client: httpx.AsyncClient, seed: Seeder, alert_with_evidence: str
) -> None:
    text, reader = pdf_text(await client.get(f"/api/v1/alerts/{alert_with_evidence}/notice.pdf"))
    for expected in (
        "责令整改通知书",
        f"老王饭店{seed.uid}",
        "后厨一号",
        "后厨人员未佩戴口罩",  # the violation's name from the catalogue
        "《中华人民共和国食品安全法》第三十三条",  # its legal basis from the catalogue
        DEMO_BUREAU_NAME,  # demo mode's issuing bureau
        "2024-05-0216:00",  # the deadline, T0 + 24 h in Asia/Shanghai
        "首违不罚",  # first-offence leniency
    ):
        assert expected in text, expected
    assert len(reader.pages[0].images) == 1  # the evidence snapshot
    fonts = {str(f["/BaseFont"]) for p in reader.pages for f in p["/Resources"]["/Font"].values()}
    assert any("CJK" in f for f in fonts), fonts  # embedded, not a reader's substitute
    english, _ = pdf_text(await client.get(f"/api/v1/alerts/{alert_with_evidence}/notice.pdf?lang=en"))
    assert "RectificationNotice" in english and "Kitchenstaffwithoutamask" in english


async def test_an_enterprise_prints_its_own_notice_only(
    client: httpx.AsyncClient, pool: AsyncConnectionPool[Any], seed: Seeder, alert_with_evidence: str
) -> None:
    own = bearer(await make_key(pool, "enterprise", seed.enterprise))
    text, _ = pdf_text(await client.get(f"/api/v1/alerts/{alert_with_evidence}/notice.pdf", headers=own))
    assert f"老王饭店{seed.uid}" in text
    other = f"other-{seed.uid}"
    await seed.registry(other, f"site-{other}")
    stranger = bearer(await make_key(pool, "enterprise", other))
    r = await client.get(f"/api/v1/alerts/{alert_with_evidence}/notice.pdf", headers=stranger)
    assert r.status_code == 404 and f"老王饭店{seed.uid}" not in r.text
    assert (await client.get("/api/v1/reports/monthly.pdf?month=2024-05", headers=own)).status_code == 403


async def test_the_monthly_report(client: httpx.AsyncClient, seed: Seeder, alert_with_evidence: str) -> None:
    await seed.alert(2, created_at=T0 + timedelta(days=3), code="KITCHEN_RODENT", tier=1, status="closed")
    text, reader = pdf_text(await client.get("/api/v1/reports/monthly.pdf", params={"month": "2024-05"}))
    for expected in (
        "2024年5月监管工作月报",
        DEMO_BUREAU_NAME,
        "按告警级别",
        "按辖区",
        "徐汇区",
        "后厨出现老鼠",
        "整改率",
        "误报率",
    ):
        assert expected in text, expected
    assert "2024-05-0100:00至2024-06-0100:00（Asia/Shanghai）" in text
    # The chart is drawn: filled rectangles (`re` … `f`) in the page content.
    content = b"".join(p.get_contents().get_data() for p in reader.pages)  # type: ignore[union-attr]
    assert re.search(rb"re\s+f", content)
    for bad in ("2024-13", "1999-01", "2024-5", "x"):
        assert (await client.get("/api/v1/reports/monthly.pdf", params={"month": bad})).status_code == 422, (
            bad
        )


@pytest.fixture
async def unissuable(api_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An API outside demo mode with no bureau name, and one whose configured font is missing."""
    clients = []
    for update in ({"mode": "production", "bureau_name": ""}, {"pdf_font_path": "/nonexistent/font.ttf"}):
        application = create_app(api_settings.model_copy(update=update))
        clients.append(
            (
                application,
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=application), base_url="http://test", headers=AUTH
                ),
            )
        )
    async with (
        clients[0][0].router.lifespan_context(clients[0][0]),
        clients[1][0].router.lifespan_context(clients[1][0]),
    ):
        yield clients[0][1], clients[1][1]  # type: ignore[misc]


async def test_a_document_that_cannot_be_issued_is_a_503_with_the_reason(
    unissuable: Any, alert_with_evidence: str
) -> None:
    no_bureau, no_font = unissuable
    r = await no_bureau.get("/api/v1/reports/monthly.pdf?month=2024-05")
    assert r.status_code == 503 and "VIGIL_BUREAU_NAME" in r.json()["detail"]
    r = await no_font.get(f"/api/v1/alerts/{alert_with_evidence}/notice.pdf")
    assert r.status_code == 503 and "VIGIL_PDF_FONT_PATH" in r.json()["detail"]
    with pytest.raises(FontUnavailable):
        find_font("/nonexistent/font.ttf")


def test_the_font_is_found_and_has_chinese() -> None:
    font = find_font(None)  # the install puts fonts-noto-cjk there (README)
    assert font.path.endswith((".ttc", ".ttf", ".otf"))
