"""Downloads of what the lists and the statistics show: CSV and XLSX, with headers and labels from
the `exports` message catalogue (Chinese by default, `?lang=en` for English) and times in the
bureau's zone, 24-hour.

Each export is the list or report it mirrors, in another format: `/api/v1/alerts.csv` takes the
filters of `GET /api/v1/alerts`, `/api/v1/enterprise/alerts.csv` those of the enterprise's own list
(and, like it, only that enterprise's alerts), `/api/v1/stats.csv` those of `GET /api/v1/stats`. A
client turns a list into a download by changing the path and keeping the query.

Alerts are read in keyset pages (`api.alert_query.page_query`, the list's own query and tenancy),
each on a pooled connection held only for that page: a slow download never pins a connection, and
a year of alerts is never in memory (api/tabular.py streams what each page gives).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import StreamingResponse
from psycopg import AsyncCursor
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from alerts.stats import UNASSIGNED_DISTRICT, GroupBy, Period, StatsRow, supervision_stats
from api.alert_query import AlertFilter, page_query, tenant
from api.auth import AUTH_ERRORS, EnterpriseUser, Operator
from api.deps import ACQUIRE_TIMEOUT_S, Pool
from api.models import AlertStatus, ErrorBody
from api.pagination import split_page
from api.params import CODE_PATTERN, DISTRICT_PATTERN, ID_PATTERN, TEXT_PATTERN, as_utc
from api.stats import DEFAULT_RANGE, MAX_RANGE, UNPROCESSABLE, Since, Until
from api.tabular import (
    CSV_MEDIA_TYPE,
    XLSX_MEDIA_TYPE,
    Batch,
    Cell,
    Sheet,
    attachment,
    csv_stream,
    xlsx_stream,
)
from vigil import i18n
from vigil.catalogue import catalogue
from vigil.i18n import Language, text
from vigil.settings import Settings
from vigil.summaries import render

Format = Literal["csv", "xlsx"]
_MEDIA: dict[Format, str] = {"csv": CSV_MEDIA_TYPE, "xlsx": XLSX_MEDIA_TYPE}
# Rows per keyset page: large enough that a year of alerts is a few hundred index range scans,
# small enough that a page (and its rendered rows) is well under a megabyte.
PAGE_ROWS = 500

Lang = Annotated[Language, Query(description="language of headers and labels: zh-CN (default) or en")]


def _responses(description: str) -> dict[int | str, dict[str, Any]]:
    return {
        **AUTH_ERRORS,
        200: {"content": {CSV_MEDIA_TYPE: {}, XLSX_MEDIA_TYPE: {}}, "description": description},
        403: {"model": ErrorBody, "description": "not a credential of the role this export needs"},
        422: {"description": "invalid parameters"},
    }


# ---------------------------------------------------------------------------------------- filters


def operator_filter(
    status_: Annotated[
        list[AlertStatus] | None, Query(alias="status", description="repeat to match any of several")
    ] = None,
    code: Annotated[str | None, Query(pattern=CODE_PATTERN)] = None,
    enterprise_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    site_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    district: Annotated[str | None, Query(min_length=1, max_length=64, pattern=DISTRICT_PATTERN)] = None,
    q: Annotated[
        str | None,
        Query(min_length=1, max_length=200, pattern=TEXT_PATTERN, description="text in the summary or notes"),
    ] = None,
    tier: Annotated[int | None, Query(ge=1, le=3)] = None,
    since: Annotated[datetime | None, Query(description="created at or after (no offset means UTC)")] = None,
    until: Annotated[datetime | None, Query(description="created before (no offset means UTC)")] = None,
) -> AlertFilter:
    """The filters of `GET /api/v1/alerts`, with the same names and checks."""
    return AlertFilter(
        statuses=status_ or (), code=code, enterprise_id=enterprise_id, site_id=site_id,
        district=district, q=q, tier=tier, since=since, until=until,
    )  # fmt: skip


def enterprise_filter(
    status_: Annotated[
        list[AlertStatus] | None, Query(alias="status", description="repeat to match any of several")
    ] = None,
    code: Annotated[str | None, Query(pattern=CODE_PATTERN)] = None,
    since: Annotated[datetime | None, Query(description="created at or after (no offset means UTC)")] = None,
    until: Annotated[datetime | None, Query(description="created before (no offset means UTC)")] = None,
) -> AlertFilter:
    """The filters of `GET /api/v1/enterprise/alerts`."""
    return AlertFilter(statuses=status_ or (), code=code, since=since, until=until)


# ------------------------------------------------------------------------------------------- rows


class _Labels:
    """Header and value labels in one language, and times in the bureau's zone."""

    def __init__(self, language: Language, zone: ZoneInfo) -> None:
        self.language = language
        self.zone = zone

    def __call__(self, key: str, **params: object) -> str:
        return text(key, self.language, "exports", **params)

    def value(self, group: str, raw: object) -> str:
        """The label of a stored value (a status, a severity …), or the value itself where the
        catalogue has none: a row written by an older or newer version still exports."""
        key = f"{group}.{raw}"
        return self(key) if key in i18n.catalogue(self.language, "exports") else str(raw)

    def local(self, value: datetime | None) -> datetime | None:
        return None if value is None else value.astimezone(self.zone).replace(tzinfo=None)

    def code(self, code: str) -> str:
        kind = catalogue().get(code)
        if kind is None:
            return code
        return kind.name_zh if self.language == "zh-CN" else kind.name_en

    def district(self, district: str | None) -> str:
        return self("district.unassigned") if district in (None, UNASSIGNED_DISTRICT) else str(district)


_ALERT_COLUMNS = (
    "alert_id", "violation", "code", "tier", "severity", "status", "enterprise", "site", "district",
    "summary", "created_at", "deadline", "closed_at", "leniency", "disposition", "penalty_case",
)  # fmt: skip


def _alert_row(row: dict[str, Any], names: _Names, labels: _Labels) -> list[Cell]:
    site_name, district = names.sites.get(row["site_id"], (row["site_id"], None))
    return [
        row["alert_id"],
        labels.code(row["code"]),
        row["code"],
        labels.value("tier", row["tier"]),
        labels.value("severity", row["severity"]),
        labels.value("status", row["status"]),
        names.enterprises.get(row["enterprise_id"], row["enterprise_id"]),
        site_name,
        labels.district(district),
        render(row["code"], row.get("evidence"), labels.language),
        labels.local(row["created_at"]),
        labels.local(row["deadline"]),
        labels.local(row["closed_at"]),
        labels.value("leniency", row["leniency"]),
        labels.value("disposition", row["disposition"]) if row["disposition"] else None,
        labels("yes") if row["penalty_case"] else labels("no"),
    ]


class _Names:
    """Display names of enterprises and sites (with the site's district), looked up as pages bring
    new ids and kept for the rest of the export: a bureau has thousands of sites, not millions."""

    def __init__(self) -> None:
        self.enterprises: dict[str, str] = {}
        self.sites: dict[str, tuple[str, str | None]] = {}

    async def learn(self, cur: AsyncCursor[Any], enterprise_ids: set[str], site_ids: set[str]) -> None:
        if new := sorted(enterprise_ids - self.enterprises.keys()):
            await cur.execute(
                "SELECT enterprise_id, name FROM enterprises WHERE enterprise_id = ANY(%s)", [new]
            )
            self.enterprises.update({r["enterprise_id"]: r["name"] for r in await cur.fetchall()})
        if new := sorted(site_ids - self.sites.keys()):
            await cur.execute("SELECT site_id, name, district FROM sites WHERE site_id = ANY(%s)", [new])
            self.sites.update({r["site_id"]: (r["name"], r["district"]) for r in await cur.fetchall()})


async def alert_batches(
    pool: AsyncConnectionPool[Any], filters: AlertFilter, *, tenant: str | None, labels: _Labels
) -> AsyncIterator[Batch]:
    """Every alert `tenant` may see that matches `filters`, newest first, a page at a time. Alerts
    raised while the export runs are newer than its first page and are not in it."""
    names = _Names()
    cursor: str | None = None
    while True:
        query, params = page_query(filters, tenant=tenant, limit=PAGE_ROWS, cursor=cursor)
        async with (
            pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn,
            conn.cursor(row_factory=dict_row) as cur,
        ):
            await cur.execute(query, params)
            page, cursor = split_page(await cur.fetchall(), PAGE_ROWS, key="page_key", tiebreak="alert_id")
            await names.learn(cur, {r["enterprise_id"] for r in page}, {r["site_id"] for r in page})
        yield [_alert_row(r, names, labels) for r in page]  # outside the connection: a slow reader holds none
        if cursor is None:
            return


def _download(fmt: Format, sheets: Sequence[Sheet], stem: str, zone: ZoneInfo) -> StreamingResponse:
    stamp = datetime.now(UTC).astimezone(zone).strftime("%Y%m%d-%H%M")
    body = csv_stream(sheets[0]) if fmt == "csv" else xlsx_stream(sheets)
    return StreamingResponse(body, media_type=_MEDIA[fmt], headers=attachment(f"{stem}-{stamp}.{fmt}"))


def _alert_sheet(batches: AsyncIterator[Batch], labels: _Labels) -> Sheet:
    return Sheet(
        title=labels("sheet.alerts"),
        header=[labels(f"column.{c}") for c in _ALERT_COLUMNS],
        batches=batches,
        truncated_note=labels("truncated"),
    )


# ------------------------------------------------------------------------------------- statistics

_STATS_COLUMNS = (
    "alerts", "violations", "warnings", "penalty_cases", "rectified", "rectification_rate",
    "mean_hours_to_rectify", "repeat_offences", "repeat_offence_rate", "false_alarms", "false_alarm_rate",
)  # fmt: skip
_GROUPS: tuple[GroupBy, ...] = ("period", "district", "enterprise", "code")


def _stats_range(since: datetime | None, until: datetime | None) -> tuple[datetime, datetime]:
    """The range `GET /api/v1/stats` would report on, with its defaults and limits."""
    end = as_utc(until) if until is not None else datetime.now(UTC)
    try:
        start = as_utc(since) if since is not None else end - DEFAULT_RANGE
    except OverflowError:
        raise HTTPException(UNPROCESSABLE, "until is too early to default since 30 days before it") from None
    if start >= end:
        raise HTTPException(
            UNPROCESSABLE, f"since ({start.isoformat()}) must be before until ({end.isoformat()})"
        )
    if end - start > MAX_RANGE:
        raise HTTPException(
            UNPROCESSABLE, f"the range is over five years ({MAX_RANGE.days} days); ask for less"
        )
    return start, end


def _stats_row(group_by: GroupBy, row: StatsRow, enterprises: dict[str, str], labels: _Labels) -> list[Cell]:
    if group_by == "district":
        key = labels.district(row.key)
    elif group_by == "enterprise":
        key = enterprises.get(row.key, row.key)
    elif group_by == "code":
        key = labels.code(row.key)
    else:
        key = row.key  # the period's first day (UTC), as the statistics API keys it
    values: list[Cell] = [key]
    for column in _STATS_COLUMNS:
        value = getattr(row, column)
        values.append(round(value, 4) if isinstance(value, float) else value)
    return values


async def _stats_sheet(
    pool: AsyncConnectionPool[Any], group_by: GroupBy, labels: _Labels, **query: Any
) -> Sheet:
    # Grouped figures are small (a row per period, district, enterprise or code): read at once.
    async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
        await conn.execute("SET TRANSACTION READ ONLY")
        await conn.execute("SET LOCAL statement_timeout = '30s'")
        rows = await supervision_stats(conn, group_by=group_by, **query)
        enterprises: dict[str, str] = {}
        if group_by == "enterprise" and rows:
            cur = await conn.execute(
                "SELECT enterprise_id, name FROM enterprises WHERE enterprise_id = ANY(%s)",
                [[r.key for r in rows]],
            )
            enterprises = {e: n for e, n in await cur.fetchall()}
    batch = [_stats_row(group_by, r, enterprises, labels) for r in rows]

    async def one() -> AsyncIterator[Batch]:
        yield batch

    header = [labels(f"group.{group_by}"), *(labels(f"stats.{c}") for c in _STATS_COLUMNS)]
    return Sheet(title=labels(f"sheet.{group_by}"), header=header, batches=one())


# ----------------------------------------------------------------------------------------- routes


def make_router(settings: Settings) -> APIRouter:
    """The export routes, in the bureau's zone (`VIGIL_TIMEZONE`)."""
    router = APIRouter(tags=["exports"])
    zone = ZoneInfo(settings.timezone)

    def operator_export(fmt: Format) -> Callable[..., Awaitable[StreamingResponse]]:
        async def export(
            _principal: Operator,
            pool: Pool,
            filters: Annotated[AlertFilter, Depends(operator_filter)],
            lang: Lang = "zh-CN",
        ) -> StreamingResponse:
            labels = _Labels(lang, zone)
            batches = alert_batches(pool, filters, tenant=None, labels=labels)
            return _download(fmt, [_alert_sheet(batches, labels)], "alerts", zone)

        return export

    def enterprise_export(fmt: Format) -> Callable[..., Awaitable[StreamingResponse]]:
        async def export(
            principal: EnterpriseUser,
            pool: Pool,
            filters: Annotated[AlertFilter, Depends(enterprise_filter)],
            lang: Lang = "zh-CN",
        ) -> StreamingResponse:
            labels = _Labels(lang, zone)
            batches = alert_batches(pool, filters, tenant=tenant(principal), labels=labels)
            return _download(fmt, [_alert_sheet(batches, labels)], "alerts", zone)

        return export

    def stats_export(fmt: Format) -> Callable[..., Any]:
        async def export(
            _principal: Operator,
            pool: Pool,
            group_by: Annotated[
                GroupBy | None,
                Query(
                    description="a table per period, district, enterprise or code; XLSX without it: all four"
                ),
            ] = None,
            period: Annotated[
                Period, Query(description="period length when grouping by period (UTC)")
            ] = "month",
            since: Since = None,
            until: Until = None,
            enterprise_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
            district: Annotated[
                str | None, Query(pattern=DISTRICT_PATTERN, description="'unassigned' for sites without one")
            ] = None,
            code: Annotated[str | None, Query(pattern=CODE_PATTERN)] = None,
            lang: Lang = "zh-CN",
        ) -> StreamingResponse:
            start, end = _stats_range(since, until)
            labels = _Labels(lang, zone)
            groups = [group_by] if group_by is not None else list(_GROUPS if fmt == "xlsx" else _GROUPS[:1])
            query: dict[str, Any] = {"period": period, "since": start, "until": end}
            query |= {"enterprise_id": enterprise_id, "district": district, "code": code}
            sheets = [await _stats_sheet(pool, g, labels, **query) for g in groups]
            return _download(fmt, sheets, "stats", zone)

        return export

    for fmt in ("csv", "xlsx"):
        kind = fmt.upper()
        router.get(
            f"/api/v1/alerts.{fmt}",
            responses=_responses(f"the alerts as {kind}, newest first"),
            response_class=StreamingResponse,
            summary=f"Export the alert list as {kind} (the filters of GET /api/v1/alerts)",
        )(operator_export(fmt))
        router.get(
            f"/api/v1/enterprise/alerts.{fmt}",
            responses=_responses(f"this enterprise's alerts as {kind}, newest first"),
            response_class=StreamingResponse,
            summary=f"Export this enterprise's alerts as {kind} (the filters of its alert list)",
        )(enterprise_export(fmt))
        router.get(
            f"/api/v1/stats.{fmt}",
            responses=_responses(f"the statistics as {kind}"),
            response_class=StreamingResponse,
            summary=f"Export the statistics as {kind} (the parameters of GET /api/v1/stats)",
        )(stats_export(fmt))
    return router
