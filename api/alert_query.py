"""Reading alerts for the API: the filters, keyset paging, the public projection, and tenancy.

The operator routes (`api.alerts`), the enterprise's own (`api.enterprise`) and the evidence route
read alerts through this module, so what a caller may see is decided here, once. Every read takes
a `tenant`: an enterprise id confines it to that enterprise's alerts (another enterprise's alert
is simply not found: a 404, never a 403, and never any of its data), while None is the bureau's
staff, who see every enterprise. `tenant` and `scope` turn a principal into that value.

Only fixed SQL fragments are composed; every value travels as a query parameter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, LiteralString

from fastapi import HTTPException, status
from psycopg import sql
from psycopg.rows import dict_row

from api.auth import Principal
from api.deps import ACQUIRE_TIMEOUT_S, Pool
from api.models import AlertDetail, AlertPage, AlertPublic, AuditEntry, NoticeRecord, Rectification
from api.pagination import cursor_position, split_page
from api.params import as_utc
from vigil.catalogue import catalogue
from vigil.summaries import render_both

COLUMNS = sql.SQL(
    "alert_id, code, enterprise_id, site_id, source_kind, source_id, status, severity, tier,"
    " summary, evidence, detector, window_start, first_seen, last_seen, cleared_at, occurrences,"
    " deadline, created_at, updated_at, leniency, penalty_case, prior_alert_id, disposition, assignee,"
    " assigned_slot, difficult, notified_at, acknowledged_at, rectified_at, escalated_at, escalation_reason,"
    " closed_at, close_reason, operator_ack_at, operator_ack_by"
)

# What a page is ordered by, newest first, with alert_id breaking ties. "ended": when an alert
# ended; closed_at is set by every close, updated_at covers rows without it.
Order = Literal["created", "ended"]
_ORDER_KEYS: dict[Order, sql.Composable] = {
    "created": sql.SQL("created_at"),
    "ended": sql.SQL("COALESCE(closed_at, updated_at)"),
}

# The alert references the image: its own snapshot or frame, one of its occurrences', or a photo
# of one of its rectifications.
_REFERENCES_IMAGE = (
    "(a.evidence ->> 'snapshot_sha256' = %s OR a.evidence ->> 'frame_sha256' = %s"
    " OR EXISTS (SELECT 1 FROM alert_violations v WHERE v.alert_id = a.alert_id"
    " AND (v.evidence ->> 'snapshot_sha256' = %s OR v.evidence ->> 'frame_sha256' = %s))"
    " OR EXISTS (SELECT 1 FROM rectifications r WHERE r.alert_id = a.alert_id AND r.photos ? %s))"
)


# ---------------------------------------------------------------------------------------- tenancy


def tenant(principal: Principal) -> str:
    """The enterprise an enterprise credential is confined to."""
    if principal.enterprise_id is None:  # an enterprise key always names one; never widen to all
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this credential is not bound to an enterprise")
    return principal.enterprise_id


def scope(principal: Principal) -> str | None:
    """The enterprise the caller is confined to; None for the bureau's staff, who see every one."""
    if principal.role in ("operator", "supervisor"):
        return None
    return tenant(principal)


class _Where:
    """AND-ed conditions and their parameters, in order."""

    def __init__(self) -> None:
        self.conditions: list[sql.Composable] = []
        self.params: list[Any] = []

    def add(self, condition: LiteralString | sql.Composable, *params: Any) -> None:
        self.conditions.append(sql.SQL(condition) if isinstance(condition, str) else condition)
        self.params.extend(params)

    def tenancy(self, tenant: str | None, table: str) -> None:
        """The tenancy condition: with a tenant, only rows of `table` that are that enterprise's."""
        if tenant is not None:
            self.add(sql.SQL("{} = %s").format(sql.Identifier(table, "enterprise_id")), tenant)

    def clause(self) -> sql.Composable:
        return sql.SQL("WHERE ") + sql.SQL(" AND ").join(self.conditions) if self.conditions else sql.SQL("")


# ------------------------------------------------------------------------------------- projection


def public(row: dict[str, Any]) -> dict[str, Any]:
    """An alert row as the API shows it: with its code's names from the violation catalogue and its
    summary for people in both languages (`summary` stays the detector's English engineering text)."""
    kind = catalogue().get(row["code"])
    return {
        **row,
        "name_en": kind.name_en if kind else None,
        "name_zh": kind.name_zh if kind else None,
        **render_both(row["code"], row.get("evidence")),
    }


def public_alert(row: dict[str, Any]) -> AlertPublic:
    return AlertPublic.model_validate(public(row))


def _own_view(notice: dict[str, Any]) -> dict[str, Any]:
    # The enterprise sees how each notice reached it; an error on our own broker is not its business.
    deliveries = [d if d["channel"] == "webhook" else {**d, "last_error": None} for d in notice["deliveries"]]
    return {**notice, "deliveries": deliveries}


# ---------------------------------------------------------------------------------------- filters


@dataclass(frozen=True, slots=True)
class AlertFilter:
    """What a list asks for; every field left at its default matches every alert."""

    statuses: Sequence[str] = ()  # any of these
    code: str | None = None
    enterprise_id: str | None = None
    site_id: str | None = None
    district: str | None = None  # of the alert's site
    q: str | None = None  # text in the summary or any note
    tier: int | None = None
    since: datetime | None = None  # created at or after; no offset means UTC
    until: datetime | None = None  # created before
    disposition: str | None = None  # how a closed or dismissed alert ended


def _apply(filters: AlertFilter, where: _Where) -> None:
    """Adds the conditions `filters` asks for to `where`."""
    if filters.statuses:
        where.add("status = ANY(%s)", list(filters.statuses))
    for column, value in (
        ("code", filters.code),
        ("enterprise_id", filters.enterprise_id),
        ("site_id", filters.site_id),
    ):
        if value is not None:
            where.add(sql.SQL("{} = %s").format(sql.Identifier(column)), value)
    if filters.district is not None:
        where.add("site_id IN (SELECT site_id FROM sites WHERE district = %s)", filters.district)
    if filters.q is not None:
        # A substring match (case-insensitive) rather than PostgreSQL's text search: its parsers
        # do not segment Chinese, and notes here are short. LIKE's wildcards in `q` are literal.
        like = "%" + filters.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        # What an operator sees is rendered from the code's catalogue name and the enterprise's and
        # site's names, not the stored engineering summary: "吸烟" or "老王面馆" must find alerts too.
        needle = filters.q.casefold()
        named = [
            c
            for c, v in catalogue().items()
            if needle in v.name_zh.casefold() or needle in v.name_en.casefold()
        ]
        where.add(
            "(summary ILIKE %s OR close_reason ILIKE %s OR escalation_reason ILIKE %s OR code = ANY(%s)"
            " OR enterprise_id IN (SELECT enterprise_id FROM enterprises WHERE name ILIKE %s)"
            " OR site_id IN (SELECT site_id FROM sites WHERE name ILIKE %s)"
            " OR EXISTS (SELECT 1 FROM alert_audit u"
            " WHERE u.alert_id = alerts.alert_id AND u.reason ILIKE %s)"
            " OR EXISTS (SELECT 1 FROM rectifications r WHERE r.alert_id = alerts.alert_id"
            " AND (r.description ILIKE %s OR r.decision_reason ILIKE %s)))",
            like, like, like, named, like, like, like, like, like,
        )  # fmt: skip
    if filters.tier is not None:
        where.add("tier = %s", filters.tier)
    if filters.since is not None:
        where.add("created_at >= %s", as_utc(filters.since))
    if filters.until is not None:
        where.add("created_at < %s", as_utc(filters.until))
    if filters.disposition is not None:
        where.add("disposition = %s", filters.disposition)


# ------------------------------------------------------------------------------------------ reads


def page_query(
    filters: AlertFilter,
    *,
    tenant: str | None,
    limit: int,
    cursor: str | None,
    order: Order = "created",
) -> tuple[sql.Composed, list[Any]]:
    """The query for one page of `alert_page`, and its parameters. Each row carries its position
    as `page_key` (with `alert_id`); one row more than `limit` is fetched, to tell whether there is
    a next page. A cursor that is not one of ours is a 400, before any query is made."""
    key = _ORDER_KEYS[order]
    where = _Where()
    where.tenancy(tenant, "alerts")
    _apply(filters, where)
    if cursor is not None:
        # Row comparison matches a (key DESC, alert_id DESC) index exactly.
        where.add(sql.SQL("({}, alert_id) < (%s, %s)").format(key), *cursor_position(cursor))
    query = sql.SQL(
        "SELECT {}, {} AS page_key FROM alerts {} ORDER BY {} DESC, alert_id DESC LIMIT %s"
    ).format(COLUMNS, key, where.clause(), key)
    return query, [*where.params, limit + 1]


async def alert_page(
    pool: Pool,
    filters: AlertFilter,
    *,
    tenant: str | None,
    limit: int,
    cursor: str | None,
    order: Order = "created",
) -> AlertPage:
    """One page of the alerts `tenant` may see that match `filters`, newest first by `order`; the
    next page starts after `cursor` (a 400 when it is not one of ours)."""
    query, params = page_query(filters, tenant=tenant, limit=limit, cursor=cursor, order=order)
    async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        rows = await cur.fetchall()
    page, next_cursor = split_page(rows, limit, key="page_key", tiebreak="alert_id")
    return AlertPage(items=[public_alert(r) for r in page], next_cursor=next_cursor)


async def alert_detail(pool: Pool, alert_id: str, *, tenant: str | None) -> AlertDetail:
    """One alert with its audit trail, notices and rectifications; a 404 when `tenant` may not see
    it. An enterprise sees its own notices, without our broker's delivery errors."""
    alert, notices = _Where(), _Where()
    alert.add("alert_id = %s", alert_id)
    alert.tenancy(tenant, "alerts")
    notices.add("n.alert_id = %s", alert_id)
    notices.tenancy(tenant, "n")
    # One snapshot for every read, so the trail never shows a change the alert row lacks.
    async with (
        pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn,
        conn.transaction(),
        conn.cursor(row_factory=dict_row) as cur,
    ):
        await cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        await cur.execute(sql.SQL("SELECT {} FROM alerts {}").format(COLUMNS, alert.clause()), alert.params)
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
            sql.SQL(
                "SELECT n.notice_id, n.kind, n.created_at, n.read_at, COALESCE(jsonb_agg(jsonb_build_object("
                "'channel', o.channel, 'attempts', o.attempts, 'delivered_at', o.delivered_at,"
                " 'dead_at', o.dead_at, 'last_error', o.last_error) ORDER BY o.outbox_id)"
                " FILTER (WHERE o.outbox_id IS NOT NULL), '[]') AS deliveries"
                " FROM notices n LEFT JOIN outbox o ON o.notice_id = n.notice_id"
                " {} GROUP BY n.notice_id ORDER BY n.created_at, n.notice_id"
            ).format(notices.clause()),
            notices.params,
        )
        notice_rows = await cur.fetchall()
        if tenant is not None:
            notice_rows = [_own_view(n) for n in notice_rows]
        notice_records = [NoticeRecord.model_validate(n) for n in notice_rows]
        await cur.execute(
            "SELECT submitted_at, submitted_by, description, photos, decision, decided_at, decided_by,"
            " decision_reason FROM rectifications WHERE alert_id = %s ORDER BY rectification_id",
            [alert_id],
        )
        rectifications = [Rectification.model_validate(r) for r in await cur.fetchall()]
    return AlertDetail.model_validate(
        {**public(row), "audit": audit, "notices": notice_records, "rectifications": rectifications}
    )


async def alert_status(pool: Pool, alert_id: str, *, tenant: str | None) -> str | None:
    """The alert's status; None when there is no such alert or `tenant` may not see it."""
    where = _Where()
    where.add("alert_id = %s", alert_id)
    where.tenancy(tenant, "alerts")
    async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn:
        cur = await conn.execute(sql.SQL("SELECT status FROM alerts {}").format(where.clause()), where.params)
        found = await cur.fetchone()
    return None if found is None else str(found[0])


async def references_image(pool: Pool, alert_id: str, sha256: str, *, tenant: str | None) -> bool:
    """Whether the alert references the image with this SHA-256 and `tenant` may see the alert."""
    where = _Where()
    where.add("a.alert_id = %s", alert_id)
    where.tenancy(tenant, "a")
    where.add(_REFERENCES_IMAGE, *[sha256] * 5)
    async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn:
        cur = await conn.execute(sql.SQL("SELECT 1 FROM alerts a {}").format(where.clause()), where.params)
        return await cur.fetchone() is not None
