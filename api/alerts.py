"""Read access to alerts: a filtered, keyset-paginated list and one alert with its audit trail."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, status
from psycopg import sql
from psycopg.rows import dict_row

from api.auth import Operator
from api.deps import Pool
from api.models import (
    AlertDetail,
    AlertPage,
    AlertPublic,
    AlertStatus,
    AuditEntry,
    ErrorBody,
    NoticeRecord,
    Rectification,
)
from api.pagination import InvalidCursor, decode_cursor, encode_cursor
from vigil.catalogue import catalogue
from vigil.events import ID_PATTERN

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])

# How long a request waits for a pooled connection before the API answers 503.
ACQUIRE_TIMEOUT_S = 5.0

# Same shape as the registry's id CHECK constraints. Also keeps NUL (which PostgreSQL text
# refuses, turning into a 500) and oversized values out of the query: bad input is a 422.
_ID_PATTERN = rf"^{ID_PATTERN.pattern}$"
_ALERT_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"
_CODE_PATTERN = r"^[A-Za-z0-9_]{1,64}$"
# Districts are names (Chinese or Latin); free text is any printable text. Both keep control
# characters (NUL, which PostgreSQL text refuses) out of the query.
_DISTRICT_PATTERN = r"^[\w .()'-]{1,64}$"
_TEXT_PATTERN = r"^[^\x00-\x1f\x7f]+$"

_COLUMNS = sql.SQL(
    "alert_id, code, enterprise_id, site_id, source_kind, source_id, status, severity, tier,"
    " summary, evidence, detector, window_start, first_seen, last_seen, cleared_at, occurrences,"
    " deadline, created_at, updated_at, leniency, penalty_case, prior_alert_id, disposition, assignee,"
    " assigned_slot, difficult, notified_at, acknowledged_at, rectified_at, escalated_at, escalation_reason,"
    " closed_at, close_reason, operator_ack_at, operator_ack_by"
)

_AUTH_ERRORS: dict[int | str, dict[str, Any]] = {401: {"model": ErrorBody, "description": "no valid token"}}


def _public(row: dict[str, Any]) -> dict[str, Any]:
    kind = catalogue().get(row["code"])
    return {**row, "name_en": kind.name_en if kind else None, "name_zh": kind.name_zh if kind else None}


def _utc(value: datetime) -> datetime:
    # A time without an offset is taken as UTC, not as whatever zone the database session has.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@router.get(
    "",
    responses={**_AUTH_ERRORS, 400: {"model": ErrorBody, "description": "invalid cursor"}},
    summary="List alerts, newest first",
)
async def list_alerts(
    _principal: Operator,
    pool: Pool,
    status_: Annotated[
        list[AlertStatus] | None, Query(alias="status", description="repeat to match any of several")
    ] = None,
    code: Annotated[str | None, Query(pattern=_CODE_PATTERN)] = None,
    enterprise_id: Annotated[str | None, Query(pattern=_ID_PATTERN)] = None,
    site_id: Annotated[str | None, Query(pattern=_ID_PATTERN)] = None,
    district: Annotated[str | None, Query(min_length=1, max_length=64, pattern=_DISTRICT_PATTERN)] = None,
    q: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=200,
            pattern=_TEXT_PATTERN,
            description="text in the summary or any note: audit reasons, rectifications, closing reason",
        ),
    ] = None,
    tier: Annotated[int | None, Query(ge=1, le=3)] = None,
    since: Annotated[
        datetime | None, Query(description="created at or after (ISO 8601; no offset means UTC)")
    ] = None,
    until: Annotated[
        datetime | None, Query(description="created before (ISO 8601; no offset means UTC)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor from the previous page")] = None,
) -> AlertPage:
    # Only these fixed fragments are composed; every value travels as a query parameter.
    where: list[sql.Composable] = []
    params: list[Any] = []
    if status_:
        where.append(sql.SQL("status = ANY(%s)"))
        params.append(list(status_))
    for column, value in (("code", code), ("enterprise_id", enterprise_id), ("site_id", site_id)):
        if value is not None:
            where.append(sql.SQL("{} = %s").format(sql.Identifier(column)))
            params.append(value)
    if district is not None:
        where.append(sql.SQL("site_id IN (SELECT site_id FROM sites WHERE district = %s)"))
        params.append(district)
    if q is not None:
        # A substring match (case-insensitive) rather than PostgreSQL's text search: its parsers do
        # not segment Chinese, and notes here are short. LIKE's wildcards in `q` are taken literally.
        like = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where.append(
            sql.SQL(
                "(summary ILIKE %s OR close_reason ILIKE %s OR escalation_reason ILIKE %s"
                " OR EXISTS (SELECT 1 FROM alert_audit u"
                " WHERE u.alert_id = alerts.alert_id AND u.reason ILIKE %s)"
                " OR EXISTS (SELECT 1 FROM rectifications r WHERE r.alert_id = alerts.alert_id"
                " AND (r.description ILIKE %s OR r.decision_reason ILIKE %s)))"
            )
        )
        params.extend([like] * 6)
    if tier is not None:
        where.append(sql.SQL("tier = %s"))
        params.append(tier)
    if since is not None:
        where.append(sql.SQL("created_at >= %s"))
        params.append(_utc(since))
    if until is not None:
        where.append(sql.SQL("created_at < %s"))
        params.append(_utc(until))
    if cursor is not None:
        try:
            after_created, after_id = decode_cursor(cursor)
        except InvalidCursor as exc:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, f"invalid cursor: {exc}") from None
        # Row comparison matches the (created_at DESC, alert_id DESC) index exactly.
        where.append(sql.SQL("(created_at, alert_id) < (%s, %s)"))
        params.extend([after_created, after_id])

    query = sql.SQL("SELECT {} FROM alerts {} ORDER BY created_at DESC, alert_id DESC LIMIT %s").format(
        _COLUMNS,
        sql.SQL("WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL(""),
    )
    params.append(limit + 1)  # one extra row says whether there is a next page
    async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        rows = await cur.fetchall()

    page, more = rows[:limit], len(rows) > limit
    next_cursor = encode_cursor(page[-1]["created_at"], page[-1]["alert_id"]) if more else None
    return AlertPage(items=[AlertPublic.model_validate(_public(r)) for r in page], next_cursor=next_cursor)


@router.get(
    "/{alert_id}",
    responses={**_AUTH_ERRORS, 404: {"model": ErrorBody, "description": "no such alert"}},
    summary="One alert with its audit trail",
)
async def get_alert(
    _principal: Operator,
    pool: Pool,
    alert_id: Annotated[str, Path(pattern=_ALERT_ID_PATTERN)],
) -> AlertDetail:
    # One snapshot for both reads, so the trail never shows a change the alert row lacks.
    async with (
        pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn,
        conn.transaction(),
        conn.cursor(row_factory=dict_row) as cur,
    ):
        await cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        await cur.execute(sql.SQL("SELECT {} FROM alerts WHERE alert_id = %s").format(_COLUMNS), [alert_id])
        row = await cur.fetchone()
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"alert {alert_id} not found")
        await cur.execute(
            "SELECT at, actor, action, from_status, to_status, reason FROM alert_audit"
            " WHERE alert_id = %s ORDER BY audit_id",  # audit_id is insertion order; `at` can tie
            [alert_id],
        )
        audit = [AuditEntry.model_validate(a) for a in await cur.fetchall()]
        await cur.execute(
            "SELECT n.notice_id, n.kind, n.created_at, n.read_at, COALESCE(jsonb_agg(jsonb_build_object("
            "'channel', o.channel, 'attempts', o.attempts, 'delivered_at', o.delivered_at,"
            " 'dead_at', o.dead_at, 'last_error', o.last_error) ORDER BY o.outbox_id)"
            " FILTER (WHERE o.outbox_id IS NOT NULL), '[]') AS deliveries"
            " FROM notices n LEFT JOIN outbox o ON o.notice_id = n.notice_id"
            " WHERE n.alert_id = %s GROUP BY n.notice_id ORDER BY n.created_at, n.notice_id",
            [alert_id],
        )
        notices = [NoticeRecord.model_validate(n) for n in await cur.fetchall()]
        await cur.execute(
            "SELECT submitted_at, submitted_by, description, photos, decision, decided_at, decided_by,"
            " decision_reason FROM rectifications WHERE alert_id = %s ORDER BY rectification_id",
            [alert_id],
        )
        rectifications = [Rectification.model_validate(r) for r in await cur.fetchall()]
    return AlertDetail.model_validate(
        {**_public(row), "audit": audit, "notices": notices, "rectifications": rectifications}
    )
