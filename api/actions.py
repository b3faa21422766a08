"""The bureau's moves on an alert (ack, verify, reject, dismiss, escalate, flag difficult, assign), the
follow-up visits after penalty cases, and marking staff away.

Each move runs `alerts.lifecycle` in one transaction and answers with the alert as it now is. An
illegal move is a 409 naming the states it needs; refused content is a 422; an unknown alert 404.
The enterprise's own moves (acknowledge, submit a rectification) arrive with enterprise credentials.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from psycopg.rows import dict_row
from pydantic import BaseModel, ConfigDict, Field

from alerts import lifecycle, staffing
from alerts.policy import Policy
from api.alert_query import public_alert
from api.auth import Operator, Principal
from api.deps import ACQUIRE_TIMEOUT_S, Pool, refusals
from api.models import AlertPublic, ErrorBody
from api.params import ID_PATTERN, AlertId, as_utc

router = APIRouter(prefix="/api/v1", tags=["lifecycle"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "no valid token"},
    404: {"model": ErrorBody, "description": "no such alert"},
    409: {"model": ErrorBody, "description": "the alert's state does not allow this move"},
    422: {"model": ErrorBody, "description": "refused content (e.g. an empty reason)"},
}
Reason = Annotated[str, Field(min_length=1, max_length=4000)]


class NoteBody(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"note": "checked the photos against the site plan"}]}
    )

    note: Annotated[str | None, Field(max_length=4000)] = None


class ReasonBody(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"reason": "steam from the wok, not smoke"}]})

    reason: Reason


class RejectBody(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"reason": "the photo does not show the bin lid", "deadline": "2026-12-01T18:00:00+08:00"}
            ]
        }
    )

    reason: Reason
    deadline: datetime | None = Field(
        default=None, description="new rectification deadline; default: the code's own time from now"
    )


class AssignBody(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"staff_id": "li-na", "reason": "Zhang Wei is on leave"}]}
    )

    staff_id: Annotated[str, Field(pattern=ID_PATTERN)]
    reason: Annotated[str | None, Field(max_length=4000)] = None


class VisitBody(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"outcome": "compliant", "notes": "bins covered"}]}
    )

    outcome: Literal["compliant", "non_compliant"]
    notes: Annotated[str | None, Field(max_length=4000)] = None


class AwayBody(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"away": True}]})

    away: bool


class Visit(BaseModel):
    visit_id: int
    alert_id: str
    site_id: str
    staff_id: str | None
    due_at: datetime
    status: Literal["scheduled", "completed", "missed"]
    outcome: str | None
    notes: str | None
    completed_at: datetime | None


class AwayResult(BaseModel):
    staff_id: str
    away: bool
    reassigned: list[str] = Field(description="alerts moved to another handler")


def _actor(principal: Principal) -> str:
    return principal.actor


def _policy(request: Request) -> Policy:
    policy: Policy = request.app.state.policy
    return policy


async def _run(pool: Pool, fn: Any, *args: Any, **kwargs: Any) -> AlertPublic:
    with refusals():
        async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
            row = await fn(conn, *args, **kwargs)
    return public_alert(row)


@router.post("/alerts/{alert_id}/ack", responses=_ERRORS, summary="Operator: seen, I have it")
async def operator_acknowledge(
    principal: Operator, pool: Pool, alert_id: AlertId, body: NoteBody
) -> AlertPublic:
    return await _run(pool, lifecycle.operator_acknowledge, alert_id, actor=_actor(principal), note=body.note)


@router.post("/alerts/{alert_id}/verify", responses=_ERRORS, summary="Accept the rectification and close")
async def verify(
    principal: Operator, pool: Pool, request: Request, alert_id: AlertId, body: NoteBody
) -> AlertPublic:
    return await _run(
        pool, lifecycle.verify, alert_id, actor=_actor(principal), note=body.note, policy=_policy(request)
    )


@router.post("/alerts/{alert_id}/reject", responses=_ERRORS, summary="Send the rectification back")
async def reject(
    principal: Operator, pool: Pool, request: Request, alert_id: AlertId, body: RejectBody
) -> AlertPublic:
    # No offset means UTC, as everywhere in the API.
    deadline = as_utc(body.deadline) if body.deadline is not None else None
    return await _run(
        pool, lifecycle.reject, alert_id, actor=_actor(principal), reason=body.reason, deadline=deadline,
        policy=_policy(request),
    )  # fmt: skip


@router.post("/alerts/{alert_id}/dismiss", responses=_ERRORS, summary="Dismiss as a false alarm")
async def dismiss(
    principal: Operator, pool: Pool, request: Request, alert_id: AlertId, body: ReasonBody
) -> AlertPublic:
    return await _run(
        pool,
        lifecycle.dismiss,
        alert_id,
        actor=_actor(principal),
        reason=body.reason,
        policy=_policy(request),
    )


@router.post("/alerts/{alert_id}/escalate", responses=_ERRORS, summary="Escalate to the specialist (C)")
async def escalate(
    principal: Operator, pool: Pool, request: Request, alert_id: AlertId, body: ReasonBody
) -> AlertPublic:
    return await _run(
        pool,
        lifecycle.escalate,
        alert_id,
        actor=_actor(principal),
        reason=body.reason,
        policy=_policy(request),
    )


@router.post("/alerts/{alert_id}/flag-difficult", responses=_ERRORS, summary="Hand to the specialist (C)")
async def flag_difficult(principal: Operator, pool: Pool, alert_id: AlertId, body: ReasonBody) -> AlertPublic:
    return await _run(pool, lifecycle.flag_difficult, alert_id, actor=_actor(principal), reason=body.reason)


@router.post("/alerts/{alert_id}/assign", responses=_ERRORS, summary="Assign to a staff member")
async def assign(principal: Operator, pool: Pool, alert_id: AlertId, body: AssignBody) -> AlertPublic:
    return await _run(
        pool, lifecycle.assign, alert_id, actor=_actor(principal), staff_id=body.staff_id, reason=body.reason
    )


@router.get("/visits", responses={401: _ERRORS[401]}, summary="Follow-up visits after penalty cases")
async def list_visits(
    _principal: Operator,
    pool: Pool,
    status_: Annotated[Literal["scheduled", "completed", "missed"] | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[Visit]:
    async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT * FROM follow_up_visits WHERE %(s)s::text IS NULL OR status = %(s)s"
            " ORDER BY due_at LIMIT %(n)s",
            {"s": status_, "n": limit},
        )
        return [Visit.model_validate(r) for r in await cur.fetchall()]


@router.post("/visits/{visit_id}", responses=_ERRORS, summary="Record the outcome of a follow-up visit")
async def record_visit(
    principal: Operator, pool: Pool, visit_id: Annotated[int, Path(ge=1, lt=2**63)], body: VisitBody
) -> Visit:
    with refusals():
        async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
            await lifecycle.record_visit(
                conn, visit_id, actor=_actor(principal), outcome=body.outcome, notes=body.notes
            )
            async with conn.cursor(row_factory=dict_row) as cur:
                await cur.execute("SELECT * FROM follow_up_visits WHERE visit_id = %s", (visit_id,))
                return Visit.model_validate(await cur.fetchone())


@router.put("/staff/{staff_id}/away", responses=_ERRORS, summary="Mark a staff member away (or back)")
async def set_away(
    principal: Operator,
    pool: Pool,
    staff_id: Annotated[str, Path(pattern=ID_PATTERN)],
    body: AwayBody,
) -> AwayResult:
    with refusals():
        async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
            moved = await staffing.set_away(conn, staff_id, body.away, actor=_actor(principal))
    return AwayResult(staff_id=staff_id, away=body.away, reassigned=moved)
