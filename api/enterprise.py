"""The enterprise's own API: its notices, its alerts, its rectifications, its compliance score.

Every route takes an enterprise credential and is scoped to that enterprise: another enterprise's
alert or notice is a 404 (never a 403, and never any of its data), and lists hold only the caller's
rows. Bureau staff are refused (403): they have the operator routes.

Rectification photos arrive as multipart/form-data and are checked and re-encoded by `api.uploads`
before they go into the content-addressed evidence store; their SHA-256 goes on the rectification
and they are served at `/api/v1/alerts/{alert_id}/evidence/{sha256}`.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, HTTPException, Path, Query, Request, status
from psycopg import sql
from psycopg.rows import dict_row
from pydantic import BaseModel, ConfigDict, Field

from alerts import lifecycle
from alerts.compliance import DEFAULT_WINDOW_DAYS, FORMULA, MAX_WINDOW_DAYS, compliance
from alerts.notices import mark_read
from api.alerts import _ALERT_ID_PATTERN, _CODE_PATTERN, _COLUMNS, ACQUIRE_TIMEOUT_S, _public
from api.auth import EnterpriseUser, Principal
from api.deps import Pool, refusals
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
from api.uploads import MAX_DESCRIPTION, MAX_DIMENSION, MAX_PHOTOS, read_rectification_form
from vigil.evidence import EvidenceStore

router = APIRouter(prefix="/api/v1/enterprise", tags=["enterprise"])

_NOTICE_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,200}$"

# --- OpenAPI ------------------------------------------------------------------------------------


def _error(description: str, example: str) -> dict[str, Any]:
    return {
        "model": ErrorBody,
        "description": description,
        "content": {"application/json": {"example": {"detail": example}}},
    }


_401 = _error("no valid token", "invalid bearer token")
_403 = _error("not an enterprise credential", "enterprise role required")
_BASE: dict[int | str, dict[str, Any]] = {401: _401, 403: _403}
_400 = _error("an invalid cursor", "invalid cursor: cursor is not valid base64 JSON")
_404_ALERT = _error("no such alert (or not this enterprise's)", "alert a-123 not found")
_409 = _error(
    "the alert's state does not allow this move",
    "cannot submit rectification an alert that is closed (allowed from: acknowledged, escalated,"
    " notified, open, rejected)",
)

# --- models -------------------------------------------------------------------------------------

_ALERT_ID_EXAMPLE = "v-camera-cam-1-KITCHEN_SMOKING-1714550400000"


class Notice(BaseModel):
    """One notice in the enterprise's inbox, as it was pushed (MQTT, webhook), with the read receipt."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "notice_id": f"{_ALERT_ID_EXAMPLE}:opened",
                    "alert_id": _ALERT_ID_EXAMPLE,
                    "kind": "opened",
                    "created_at": "2024-05-01T08:00:05Z",
                    "read_at": None,
                    "payload": {"type": "notice", "kind": "opened", "code": "KITCHEN_SMOKING"},
                }
            ]
        }
    )

    notice_id: str
    alert_id: str
    kind: Literal["opened", "rejected", "escalated", "closed", "dismissed"]
    created_at: datetime
    read_at: datetime | None = Field(description="when the enterprise first read it; null while unread")
    payload: dict[str, Any] = Field(description="the notice as pushed: alert, deadline, leniency, evidence")


class NoticePage(BaseModel):
    items: list[Notice]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last page")


class ReadReceipt(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"notice_id": f"{_ALERT_ID_EXAMPLE}:opened", "read_at": "2024-05-01T08:03:00Z"}]
        }
    )

    notice_id: str
    read_at: datetime = Field(description="the first read; reading again does not move it")


class AcknowledgeBody(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"note": "Seen; the manager is on it."}]})

    note: Annotated[str | None, Field(max_length=MAX_DESCRIPTION)] = None


class RectificationReceipt(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"alert": {"status": "rectification_submitted"}, "photos": ["9f" * 32]}]
        }
    )

    alert: AlertPublic = Field(description="the alert as it now is (rectification_submitted)")
    photos: list[str] = Field(description="SHA-256 of each stored photo (re-encoded JPEG), in upload order")


class ComplianceReport(BaseModel):
    """The score and every part of it; the formula is in `formula`."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "enterprise_id": "ent-noodle-house",
                    "since": "2023-05-02T08:00:00Z",
                    "until": "2024-05-01T08:00:00Z",
                    "window_days": 365,
                    "score": 87,
                    "violations": 2,
                    "false_alarms": 1,
                    "still_open": 0,
                    "by_severity": {"major": 1, "minor": 1},
                    "penalty_cases": 0,
                    "repeat_offences": 0,
                    "missed_deadlines": 1,
                    "rectified_on_time": 1,
                    "on_time_rate": 0.5,
                    "deductions": 15,
                    "severity_points": 12,
                    "penalty_points": 0,
                    "missed_deadline_points": 3,
                    "on_time_credit": 2,
                    "formula": FORMULA,
                }
            ]
        }
    )

    enterprise_id: str
    since: datetime
    until: datetime
    window_days: int
    score: int = Field(ge=0, le=100, description="100 is spotless; see `formula`")
    violations: int = Field(description="alerts created in the window, false alarms excluded")
    false_alarms: int = Field(description="alerts dismissed as false alarms: never counted against you")
    still_open: int = Field(description="violations not yet closed")
    by_severity: dict[str, int] = Field(description="violations per severity")
    penalty_cases: int = Field(description="violations referred for a penalty case")
    repeat_offences: int = Field(description="violations that repeated an earlier offence")
    missed_deadlines: int = Field(description="violations whose rectification deadline was missed")
    rectified_on_time: int = Field(description="violations rectified by the deadline and accepted")
    on_time_rate: float | None = Field(
        description="rectified_on_time / (rectified_on_time + missed_deadlines); null when neither"
    )
    deductions: int = Field(description="severity_points + penalty_points + missed_deadline_points")
    severity_points: int
    penalty_points: int
    missed_deadline_points: int
    on_time_credit: int = Field(description="points given back for on-time rectifications")
    formula: str


# --- helpers ------------------------------------------------------------------------------------


def _tenant(principal: Principal) -> str:
    if principal.enterprise_id is None:  # an enterprise key always names one; never widen to all
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this credential is not bound to an enterprise")
    return principal.enterprise_id


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _cursor(cursor: str) -> tuple[datetime, str]:
    try:
        return decode_cursor(cursor)
    except InvalidCursor as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"invalid cursor: {exc}") from None


def _own_view(notice: dict[str, Any]) -> dict[str, Any]:
    # The enterprise sees how each notice reached it; an error on our own broker is not its business.
    deliveries = [d if d["channel"] == "webhook" else {**d, "last_error": None} for d in notice["deliveries"]]
    return {**notice, "deliveries": deliveries}


AlertId = Annotated[str, Path(pattern=_ALERT_ID_PATTERN)]
Limit = Annotated[int, Query(ge=1, le=200)]
Cursor = Annotated[str | None, Query(description="next_cursor from the previous page")]

# --- notices ------------------------------------------------------------------------------------


@router.get(
    "/notices",
    responses={**_BASE, 400: _400},
    summary="The notice inbox, newest first",
    description="Every notice sent to this enterprise, with its read receipt. `unread=true` for the unread.",
)
async def list_notices(
    principal: EnterpriseUser,
    pool: Pool,
    unread: Annotated[bool, Query(description="only notices not yet read")] = False,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> NoticePage:
    where: list[sql.Composable] = [sql.SQL("enterprise_id = %s")]
    params: list[Any] = [_tenant(principal)]
    if unread:
        where.append(sql.SQL("read_at IS NULL"))
    if cursor is not None:
        where.append(sql.SQL("(created_at, notice_id) < (%s, %s)"))
        params.extend(_cursor(cursor))
    query = sql.SQL(
        "SELECT notice_id, alert_id, kind, created_at, read_at, payload FROM notices WHERE {}"
        " ORDER BY created_at DESC, notice_id DESC LIMIT %s"
    ).format(sql.SQL(" AND ").join(where))
    params.append(limit + 1)
    async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        rows = await cur.fetchall()
    page, more = rows[:limit], len(rows) > limit
    next_cursor = encode_cursor(page[-1]["created_at"], page[-1]["notice_id"]) if more else None
    return NoticePage(items=[Notice.model_validate(r) for r in page], next_cursor=next_cursor)


@router.post(
    "/notices/{notice_id}/read",
    responses={**_BASE, 404: _error("no such notice (or not this enterprise's)", "notice n-1 not found")},
    summary="Read receipt: mark a notice read",
    description="The first read is kept, and audited on the alert as proof the enterprise was told.",
)
async def read_notice(
    principal: EnterpriseUser,
    pool: Pool,
    notice_id: Annotated[str, Path(pattern=_NOTICE_ID_PATTERN)],
) -> ReadReceipt:
    enterprise_id = _tenant(principal)
    with refusals():
        async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
            read_at = await mark_read(conn, notice_id, enterprise_id=enterprise_id, actor=principal.actor)
    return ReadReceipt(notice_id=notice_id, read_at=read_at)


# --- alerts -------------------------------------------------------------------------------------


@router.get(
    "/alerts",
    responses={**_BASE, 400: _400},
    summary="This enterprise's alerts, newest first",
)
async def list_alerts(
    principal: EnterpriseUser,
    pool: Pool,
    status_: Annotated[
        list[AlertStatus] | None, Query(alias="status", description="repeat to match any of several")
    ] = None,
    code: Annotated[str | None, Query(pattern=_CODE_PATTERN)] = None,
    since: Annotated[
        datetime | None, Query(description="created at or after (ISO 8601; no offset means UTC)")
    ] = None,
    until: Annotated[
        datetime | None, Query(description="created before (ISO 8601; no offset means UTC)")
    ] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> AlertPage:
    where: list[sql.Composable] = [sql.SQL("enterprise_id = %s")]
    params: list[Any] = [_tenant(principal)]
    if status_:
        where.append(sql.SQL("status = ANY(%s)"))
        params.append(list(status_))
    if code is not None:
        where.append(sql.SQL("code = %s"))
        params.append(code)
    if since is not None:
        where.append(sql.SQL("created_at >= %s"))
        params.append(_utc(since))
    if until is not None:
        where.append(sql.SQL("created_at < %s"))
        params.append(_utc(until))
    if cursor is not None:
        where.append(sql.SQL("(created_at, alert_id) < (%s, %s)"))
        params.extend(_cursor(cursor))
    query = sql.SQL("SELECT {} FROM alerts WHERE {} ORDER BY created_at DESC, alert_id DESC LIMIT %s").format(
        _COLUMNS, sql.SQL(" AND ").join(where)
    )
    params.append(limit + 1)
    async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        rows = await cur.fetchall()
    page, more = rows[:limit], len(rows) > limit
    next_cursor = encode_cursor(page[-1]["created_at"], page[-1]["alert_id"]) if more else None
    return AlertPage(items=[AlertPublic.model_validate(_public(r)) for r in page], next_cursor=next_cursor)


@router.get(
    "/alerts/{alert_id}",
    responses={**_BASE, 404: _404_ALERT},
    summary="One of this enterprise's alerts: its notices, rectifications and audit trail",
)
async def get_alert(principal: EnterpriseUser, pool: Pool, alert_id: AlertId) -> AlertDetail:
    enterprise_id = _tenant(principal)
    async with (
        pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn,
        conn.transaction(),
        conn.cursor(row_factory=dict_row) as cur,
    ):
        await cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        await cur.execute(
            sql.SQL("SELECT {} FROM alerts WHERE alert_id = %s AND enterprise_id = %s").format(_COLUMNS),
            [alert_id, enterprise_id],
        )
        row = await cur.fetchone()
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"alert {alert_id} not found")
        await cur.execute(
            "SELECT at, actor, action, from_status, to_status, reason FROM alert_audit"
            " WHERE alert_id = %s ORDER BY audit_id",
            [alert_id],
        )
        audit = [AuditEntry.model_validate(a) for a in await cur.fetchall()]
        await cur.execute(
            "SELECT n.notice_id, n.kind, n.created_at, n.read_at, COALESCE(jsonb_agg(jsonb_build_object("
            "'channel', o.channel, 'attempts', o.attempts, 'delivered_at', o.delivered_at,"
            " 'dead_at', o.dead_at, 'last_error', o.last_error) ORDER BY o.outbox_id)"
            " FILTER (WHERE o.outbox_id IS NOT NULL), '[]') AS deliveries"
            " FROM notices n LEFT JOIN outbox o ON o.notice_id = n.notice_id"
            " WHERE n.alert_id = %s AND n.enterprise_id = %s GROUP BY n.notice_id"
            " ORDER BY n.created_at, n.notice_id",
            [alert_id, enterprise_id],
        )
        notices = [NoticeRecord.model_validate(_own_view(n)) for n in await cur.fetchall()]
        await cur.execute(
            "SELECT submitted_at, submitted_by, description, photos, decision, decided_at, decided_by,"
            " decision_reason FROM rectifications WHERE alert_id = %s ORDER BY rectification_id",
            [alert_id],
        )
        rectifications = [Rectification.model_validate(r) for r in await cur.fetchall()]
    return AlertDetail.model_validate(
        {**_public(row), "audit": audit, "notices": notices, "rectifications": rectifications}
    )


@router.post(
    "/alerts/{alert_id}/acknowledge",
    responses={**_BASE, 404: _404_ALERT, 409: _409, 422: _error("refused content", "note must be text")},
    summary="Acknowledge an alert: seen, we are on it",
)
async def acknowledge(
    principal: EnterpriseUser,
    pool: Pool,
    alert_id: AlertId,
    body: Annotated[AcknowledgeBody | None, Body()] = None,
) -> AlertPublic:
    enterprise_id = _tenant(principal)
    with refusals():
        async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
            row = await lifecycle.acknowledge(
                conn, alert_id, enterprise_id=enterprise_id, actor=principal.actor,
                note=body.note if body is not None else None,
            )  # fmt: skip
    return AlertPublic.model_validate(_public(row))


# --- rectification ------------------------------------------------------------------------------

_RECTIFICATION_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["description"],
                "properties": {
                    "description": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": MAX_DESCRIPTION,
                        "description": "what was done to correct the violation",
                    },
                    "photos": {
                        "type": "array",
                        "maxItems": MAX_PHOTOS,
                        "items": {"type": "string", "contentMediaType": "application/octet-stream"},
                        "description": f"0 to {MAX_PHOTOS} photos, JPEG or PNG, each at most 5 MiB and"
                        f" {MAX_DIMENSION}x{MAX_DIMENSION} pixels; stored re-encoded as JPEG",
                    },
                },
            },
            "encoding": {"photos": {"contentType": "image/jpeg, image/png"}},
        }
    },
}


@router.post(
    "/alerts/{alert_id}/rectification",
    status_code=status.HTTP_201_CREATED,
    openapi_extra={"requestBody": _RECTIFICATION_BODY},
    responses={
        **_BASE,
        400: _error("malformed multipart body", "Invalid multipart data."),
        404: _404_ALERT,
        409: _409,
        413: _error("a photo over 5 MiB, or the whole form over its limit", "photo 1 (sink.jpg): over 5 MiB"),
        415: _error(
            "not multipart/form-data, or a photo that is not (really) JPEG or PNG",
            "photo 1 (notes.jpg): the content is not image/jpeg",
        ),
        422: _error(
            "an empty or over-long description, more than 10 photos, or a photo that does not decode"
            " or is over 8000x8000 pixels",
            "photo 2 (sink.png): the image does not decode",
        ),
        503: _error("photos cannot be stored: no evidence store configured", "no evidence store configured"),
    },
    summary="Submit a rectification: what was done, with photos",
    description="multipart/form-data with `description` and 0 to 10 `photos`. Each photo is checked"
    " (type, magic bytes, size, dimensions, decoding) and stored re-encoded as JPEG, which strips"
    " EXIF/GPS metadata; the response lists the stored photos' SHA-256.",
)
async def submit_rectification(
    principal: EnterpriseUser, pool: Pool, request: Request, alert_id: AlertId
) -> RectificationReceipt:
    enterprise_id = _tenant(principal)
    # Refuse a move the alert cannot make before reading (and storing) any upload.
    async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn:
        cur = await conn.execute(
            "SELECT status FROM alerts WHERE alert_id = %s AND enterprise_id = %s", (alert_id, enterprise_id)
        )
        found = await cur.fetchone()
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"alert {alert_id} not found")
    with refusals():
        lifecycle.check_transition("submit_rectification", found[0])

    store: EvidenceStore | None = request.app.state.evidence
    description, jpegs = await read_rectification_form(request, store_available=store is not None)
    shas: list[str] = []
    for jpeg in jpegs:
        assert store is not None
        sha = await asyncio.to_thread(store.put, jpeg)  # fsync: not on the event loop
        if sha not in shas:
            shas.append(sha)
    with refusals():
        async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
            row = await lifecycle.submit_rectification(
                conn, alert_id, enterprise_id=enterprise_id, actor=principal.actor,
                description=description, photos=shas,
            )  # fmt: skip
    return RectificationReceipt(alert=AlertPublic.model_validate(_public(row)), photos=shas)


# --- history and compliance ---------------------------------------------------------------------

# When an alert ended; closed_at is set by every close, updated_at covers rows without it.
_ENDED = sql.SQL("COALESCE(closed_at, updated_at)")


@router.get(
    "/history",
    responses={**_BASE, 400: _400},
    summary="This enterprise's ended alerts (closed or dismissed) with their disposition, latest first",
)
async def history(
    principal: EnterpriseUser,
    pool: Pool,
    disposition: Annotated[
        Literal["warning", "penalty", "corrected", "false_alarm"] | None,
        Query(description="only alerts that ended this way"),
    ] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> AlertPage:
    where: list[sql.Composable] = [
        sql.SQL("enterprise_id = %s"),
        sql.SQL("status IN ('closed', 'dismissed')"),
    ]
    params: list[Any] = [_tenant(principal)]
    if disposition is not None:
        where.append(sql.SQL("disposition = %s"))
        params.append(disposition)
    if cursor is not None:
        where.append(sql.SQL("({}, alert_id) < (%s, %s)").format(_ENDED))
        params.extend(_cursor(cursor))
    query = sql.SQL(
        "SELECT {}, {} AS ended_at FROM alerts WHERE {} ORDER BY ended_at DESC, alert_id DESC LIMIT %s"
    ).format(_COLUMNS, _ENDED, sql.SQL(" AND ").join(where))
    params.append(limit + 1)
    async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        rows = await cur.fetchall()
    page, more = rows[:limit], len(rows) > limit
    next_cursor = encode_cursor(page[-1]["ended_at"], page[-1]["alert_id"]) if more else None
    return AlertPage(items=[AlertPublic.model_validate(_public(r)) for r in page], next_cursor=next_cursor)


@router.get(
    "/compliance",
    responses=_BASE,
    summary="This enterprise's compliance score (0-100) and how it was reached",
    description=FORMULA,
)
async def get_compliance(
    principal: EnterpriseUser,
    pool: Pool,
    days: Annotated[
        int, Query(ge=1, le=MAX_WINDOW_DAYS, description="the window: alerts created in the last N days")
    ] = DEFAULT_WINDOW_DAYS,
) -> ComplianceReport:
    enterprise_id = _tenant(principal)
    async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn:
        result = await compliance(conn, enterprise_id, days=days)
    return ComplianceReport(
        enterprise_id=result.enterprise_id,
        since=result.since,
        until=result.until,
        window_days=result.window_days,
        score=result.score,
        violations=result.violations,
        false_alarms=result.false_alarms,
        still_open=result.still_open,
        by_severity=result.by_severity,
        penalty_cases=result.penalty_cases,
        repeat_offences=result.repeat_offences,
        missed_deadlines=result.missed_deadlines,
        rectified_on_time=result.rectified_on_time,
        on_time_rate=result.on_time_rate,
        deductions=result.deductions,
        severity_points=result.severity_points,
        penalty_points=result.penalty_points,
        missed_deadline_points=result.missed_deadline_points,
        on_time_credit=result.on_time_credit,
        formula=FORMULA,
    )
