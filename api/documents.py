"""Printed documents, as PDF with an embedded CJK font: the rectification notice of an alert
(责令整改通知书) and the bureau's monthly report.

The notice is the alert as the enforcement file needs it: the enterprise and site by name, the
violation, the legal basis from the violation catalogue (`legal_basis_zh`), the evidence snapshot
with its SHA-256, the deadline, what leniency applies, and the issuing bureau (`VIGIL_BUREAU_NAME`).
Operators may print any alert's notice; an enterprise its own (another's is a 404, as everywhere).
The report counts the month (in the bureau's zone) by tier, district and code, with the
rectification rate, mean time to rectify, repeat offences, false-alarm rate and a bar chart; the
figures are `alerts.stats`'s, defined there.

Either answers 503 with the reason when it cannot be issued: no bureau name configured, or no CJK
font installed (api/pdf.py). Rendering runs in a worker thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from psycopg_pool import AsyncConnectionPool

from alerts.stats import ReportGroupBy, StatsRow, supervision_stats
from api.alert_query import alert_detail, scope
from api.auth import AUTH_ERRORS, Authenticated, Operator
from api.deps import ACQUIRE_TIMEOUT_S, Pool
from api.models import AlertDetail, ErrorBody
from api.params import AlertId
from api.pdf import Document, FontUnavailable, find_font
from vigil.catalogue import catalogue
from vigil.evidence import EvidenceStore
from vigil.i18n import Language, text
from vigil.settings import Settings

PDF = "application/pdf"
_TIME = "%Y-%m-%d %H:%M"
_CHART_BARS = 10
_REPORT_GROUPS: tuple[ReportGroupBy, ...] = ("all", "tier", "district", "code")
MONTH_PATTERN = r"^(20\d\d)-(0[1-9]|1[0-2])$"

Lang = Annotated[Language, Query(description="language of the document: zh-CN (default) or en")]


def _responses(description: str) -> dict[int | str, dict[str, Any]]:
    return {
        **AUTH_ERRORS,
        200: {"content": {PDF: {}}, "description": description},
        403: {"model": ErrorBody, "description": "not a credential of a role that may print this"},
        503: {"model": ErrorBody, "description": "cannot be issued: no bureau name set, or no CJK font"},
    }


def _pdf(body: bytes, filename: str) -> Response:
    return Response(
        body,
        media_type=PDF,
        headers={
            "Content-Disposition": f'inline; filename="{filename}"',
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        },
    )


async def _names(pool: AsyncConnectionPool[Any], enterprise_id: str, site_id: str) -> tuple[str, str]:
    async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn:
        cur = await conn.execute(
            "SELECT (SELECT name FROM enterprises WHERE enterprise_id = %s),"
            " (SELECT name FROM sites WHERE site_id = %s)",
            [enterprise_id, site_id],
        )
        found = await cur.fetchone()
    enterprise, site = found if found is not None else (None, None)
    return enterprise or enterprise_id, site or site_id


# ----------------------------------------------------------------------------------------- notice


def render_notice(
    font_path: str | None,
    *,
    alert: AlertDetail,
    enterprise: str,
    site: str,
    evidence: tuple[str, bytes] | None,
    bureau: str,
    zone: ZoneInfo,
    language: Language,
) -> bytes:
    """The rectification notice of `alert` as PDF bytes (FontUnavailable without a CJK font)."""

    def t(key: str, **params: object) -> str:
        return text(key, language, "exports", **params)

    def local(value: datetime) -> str:
        return value.astimezone(zone).strftime(_TIME)

    kind = catalogue().get(alert.code)
    violation = (kind.name_zh if language == "zh-CN" else kind.name_en) if kind else alert.code
    summary = alert.summary_zh if language == "zh-CN" else alert.summary_en
    basis = kind.legal_basis_zh if kind and kind.legal_basis_zh else t("notice.basis_unknown")
    doc = Document(find_font(font_path), title=t("notice.title"), footer=f"{bureau}  {alert.alert_id}")
    doc.paragraph(bureau, align="C", size=14)
    doc.heading(t("notice.title"))
    doc.paragraph(t("notice.number", number=alert.alert_id), align="R", size=9)
    doc.paragraph(t("notice.party", enterprise=enterprise))
    doc.paragraph(t("notice.site", site=site))
    doc.ln(2)
    doc.paragraph(t("notice.facts", time=local(alert.created_at), violation=violation, summary=summary))
    doc.paragraph(t("notice.basis", basis=basis))
    doc.paragraph(t("notice.order", deadline=local(alert.deadline)))
    doc.paragraph(t(f"notice.leniency.{alert.leniency}"))
    doc.paragraph(t("notice.evidence"))
    if evidence is None:
        doc.paragraph(t("notice.no_evidence"), size=9)
    else:
        sha256, jpeg = evidence
        # At most 110 x 75 mm, aspect kept: a whole frame, legible, and the notice on one page.
        doc.image(io.BytesIO(jpeg), x=doc.l_margin, w=110, h=75, keep_aspect_ratio=True)
        doc.paragraph(t("notice.evidence_hash", sha256=sha256), size=7)
    doc.ln(6)
    doc.paragraph(bureau, align="R", size=12)
    doc.paragraph(datetime.now(UTC).astimezone(zone).strftime("%Y-%m-%d"), align="R")
    doc.paragraph(t("notice.seal"), align="R", size=9)
    doc.ln(4)
    doc.paragraph(t("notice.receipt"), size=10)
    return doc.pdf_bytes()


def _evidence(alert: AlertDetail, store: EvidenceStore | None) -> tuple[str, bytes] | None:
    """The alert's own snapshot (or frame), where the store has it."""
    if store is None:
        return None
    for key in ("snapshot_sha256", "frame_sha256"):
        sha256 = alert.evidence.get(key)
        if isinstance(sha256, str):
            try:
                jpeg = store.get(sha256)
            except ValueError:  # not a SHA-256: nothing to look up
                continue
            if jpeg is not None:
                return sha256, jpeg
    return None


# ----------------------------------------------------------------------------------------- report


def _percent(value: float | None, none: str) -> str:
    return none if value is None else f"{value * 100:.1f}%"


_REPORT_COLUMNS = (
    "alerts", "violations", "rectified", "rectification_rate", "mean_hours_to_rectify",
    "repeat_offences", "false_alarm_rate",
)  # fmt: skip


def _report_row(label: str, r: StatsRow, none: str, hours: Any) -> list[str]:
    """A grouped row of the report: the columns of _REPORT_COLUMNS after the group's label."""
    return [
        label, str(r.alerts), str(r.violations), str(r.rectified), _percent(r.rectification_rate, none),
        hours(r.mean_hours_to_rectify), str(r.repeat_offences), _percent(r.false_alarm_rate, none),
    ]  # fmt: skip


def render_report(
    font_path: str | None,
    *,
    month: str,
    figures: dict[ReportGroupBy, list[StatsRow]],
    since: datetime,
    until: datetime,
    bureau: str,
    zone: ZoneInfo,
    language: Language,
) -> bytes:
    """The monthly report as PDF bytes (FontUnavailable without a CJK font)."""

    def t(key: str, **params: object) -> str:
        return text(key, language, "exports", **params)

    none = t("report.no_data")

    def hours(value: float | None) -> str:
        return none if value is None else t("report.hours", hours=f"{value:.1f}")

    def code_name(code: str) -> str:
        kind = catalogue().get(code)
        return code if kind is None else kind.name_zh if language == "zh-CN" else kind.name_en

    year, number = month.split("-")
    title = t("report.title", month=t("report.month", year=int(year), month=int(number)))
    doc = Document(find_font(font_path), title=title, footer=f"{bureau}  {title}")
    doc.paragraph(bureau, align="C", size=14)
    doc.heading(title)
    start, end = (moment.astimezone(zone).strftime(_TIME) for moment in (since, until))
    doc.paragraph(t("report.range", since=start, until=end, zone=zone.key), align="C", size=9)
    total = figures["all"][0] if figures["all"] else None
    doc.subheading(t("report.summary"))
    if total is None:
        doc.paragraph(t("report.none"))
    else:
        overview = [
            ("stats.alerts", str(total.alerts)),
            ("stats.violations", str(total.violations)),
            ("stats.warnings", str(total.warnings)),
            ("stats.penalty_cases", str(total.penalty_cases)),
            ("stats.rectified", str(total.rectified)),
            ("stats.rectification_rate", _percent(total.rectification_rate, none)),
            ("stats.mean_hours_to_rectify", hours(total.mean_hours_to_rectify)),
            ("stats.repeat_offences", str(total.repeat_offences)),
            ("stats.repeat_offence_rate", _percent(total.repeat_offence_rate, none)),
            ("stats.false_alarms", str(total.false_alarms)),
            ("stats.false_alarm_rate", _percent(total.false_alarm_rate, none)),
        ]
        doc.grid(["", ""], [(t(k), v) for k, v in overview], (90, 80))
        header_tail = [t(f"stats.{c}") for c in _REPORT_COLUMNS]

        def rows(group: ReportGroupBy, label: Any) -> list[list[str]]:
            return [_report_row(label(r.key), r, none, hours) for r in figures[group]]

        widths = (42, 17, 17, 17, 17, 20, 17, 17)
        doc.subheading(t("report.by_tier"))
        doc.grid([t("group.tier"), *header_tail], rows("tier", lambda k: t(f"tier.{k}")), widths)
        doc.subheading(t("report.by_district"))
        district = t("district.unassigned")
        doc.grid(
            [t("group.district"), *header_tail],
            rows("district", lambda k: district if k == "unassigned" else k),
            widths,
        )
        doc.subheading(t("report.by_code"))
        by_code = sorted(figures["code"], key=lambda r: (-r.violations, r.key))
        doc.grid([t("group.code"), *header_tail], rows("code", code_name), widths)
        bars = [(code_name(r.key), r.violations) for r in by_code[:_CHART_BARS] if r.violations]
        if bars:
            doc.subheading(t("report.chart", n=len(bars)))
            doc.bar_chart(bars)
    doc.paragraph(t("report.generated", time=datetime.now(UTC).astimezone(zone).strftime(_TIME)), size=8)
    return doc.pdf_bytes()


def month_range(month: str, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The month `YYYY-MM` in the bureau's zone, as [since, until) instants."""
    year, number = (int(part) for part in month.split("-"))
    start = datetime(year, number, 1, tzinfo=zone)
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def last_month(zone: ZoneInfo) -> str:
    today = datetime.now(UTC).astimezone(zone)
    return f"{today.year - 1}-12" if today.month == 1 else f"{today.year}-{today.month - 1:02d}"


# ----------------------------------------------------------------------------------------- routes


def make_router(settings: Settings) -> APIRouter:
    """The document routes, issued by the configured bureau in its zone."""
    router = APIRouter(tags=["documents"])
    zone = ZoneInfo(settings.timezone)
    font_path = settings.pdf_font_path

    def issuer() -> str:
        bureau = settings.issuing_bureau()
        if bureau is None:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                "VIGIL_BUREAU_NAME is not set: documents cannot be issued without the bureau's name",
            )
        return bureau

    async def rendered(render: Any, /, **kwargs: Any) -> bytes:
        try:
            body: bytes = await asyncio.to_thread(render, font_path, **kwargs)
        except FontUnavailable as exc:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
        return body

    @router.get(
        "/api/v1/alerts/{alert_id}/notice.pdf",
        responses={**_responses("the notice"), 404: {"model": ErrorBody, "description": "no such alert"}},
        response_class=Response,
        summary="The alert's rectification notice (责令整改通知书) as PDF",
        description="Operators may print any alert's notice; an enterprise only its own alerts'.",
    )
    async def notice(
        principal: Authenticated, pool: Pool, request: Request, alert_id: AlertId, lang: Lang = "zh-CN"
    ) -> Response:
        alert = await alert_detail(pool, alert_id, tenant=scope(principal))
        bureau = issuer()
        enterprise, site = await _names(pool, alert.enterprise_id, alert.site_id)
        store: EvidenceStore | None = request.app.state.evidence
        evidence = await asyncio.to_thread(_evidence, alert, store)
        body = await rendered(
            render_notice, alert=alert, enterprise=enterprise, site=site, evidence=evidence,
            bureau=bureau, zone=zone, language=lang,
        )  # fmt: skip
        return _pdf(body, f"notice-{alert.alert_id}.pdf")

    @router.get(
        "/api/v1/reports/monthly.pdf",
        responses={**_responses("the report"), 422: {"description": "month is not YYYY-MM (2000-2099)"}},
        response_class=Response,
        summary="The monthly supervision report as PDF",
    )
    async def monthly(
        _principal: Operator,
        pool: Pool,
        month: Annotated[
            str | None,
            Query(pattern=MONTH_PATTERN, description="YYYY-MM in the bureau's zone; default: last month"),
        ] = None,
        lang: Lang = "zh-CN",
    ) -> Response:
        bureau = issuer()
        month = month or last_month(zone)
        since, until = month_range(month, zone)
        figures: dict[ReportGroupBy, list[StatsRow]] = {}
        async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
            # One snapshot for every table, so the tables add up to the overview.
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            await conn.execute("SET LOCAL statement_timeout = '30s'")
            for group in _REPORT_GROUPS:
                figures[group] = await supervision_stats(conn, group_by=group, since=since, until=until)
        body = await rendered(
            render_report, month=month, figures=figures, since=since, until=until, bureau=bureau,
            zone=zone, language=lang,
        )  # fmt: skip
        return _pdf(body, f"monthly-report-{month}.pdf")

    return router
