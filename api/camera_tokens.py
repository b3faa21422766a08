"""Edge boxes' push tokens for camera ingest (`/api/v1/camera-tokens`), for the monitoring centre.

A token covers named cameras of one enterprise; camera ingest refuses (403, dead letter) a push for
any other camera. Issued and rotated tokens are shown once: only their SHA-256 is stored
(vigil.keys). The same as `vigil cameras token issue|rotate|revoke`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response, status
from psycopg.rows import dict_row
from pydantic import BaseModel, Field

from api.auth import Operator
from api.deps import ACQUIRE_TIMEOUT_S, Pool, refusals
from api.models import ErrorBody
from vigil.events import ID_PATTERN
from vigil.keys import MAX_PUSH_CAMERAS, issue_push_token, revoke_push_token, rotate_push_token

router = APIRouter(prefix="/api/v1/camera-tokens", tags=["camera tokens"])

_ID = rf"^{ID_PATTERN.pattern}$"
TokenId = Annotated[str, Path(pattern=r"^[0-9a-f]{12}$")]
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "no valid credential"},
    403: {"model": ErrorBody, "description": "not an operator"},
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody, "description": "no such live token"}}


class PushTokenCreate(BaseModel):
    enterprise_id: Annotated[str, Field(pattern=_ID)]
    name: Annotated[str, Field(min_length=1, max_length=200, examples=["kitchen 1 NVR"])]
    cameras: Annotated[
        list[Annotated[str, Field(pattern=_ID)]],
        Field(min_length=1, max_length=MAX_PUSH_CAMERAS, description="cameras of that enterprise"),
    ]


class PushTokenIssued(BaseModel):
    token_id: str
    token: str = Field(description="the whole token for the edge box: shown this once, stored only as a hash")


class PushTokenPublic(BaseModel):
    token_id: str
    enterprise_id: str
    name: str
    cameras: list[str]
    created_by: str
    created_at: datetime
    rotated_at: datetime | None
    revoked_at: datetime | None


@router.post(
    "",
    status_code=201,
    responses={**_ERRORS, 404: {"model": ErrorBody, "description": "a camera not of that enterprise"}},
    summary="Issue an edge box's push token for named cameras of one enterprise (shown once)",
)
async def issue(principal: Operator, pool: Pool, body: PushTokenCreate) -> PushTokenIssued:
    with refusals():
        async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
            token_id, token = await issue_push_token(
                conn, enterprise_id=body.enterprise_id, name=body.name, cameras=body.cameras,
                created_by=principal.actor,
            )  # fmt: skip
    return PushTokenIssued(token_id=token_id, token=token)


@router.get("", responses=_ERRORS, summary="Push tokens (never their secrets)")
async def list_tokens(
    _principal: Operator,
    pool: Pool,
    enterprise_id: Annotated[str | None, Query(pattern=_ID)] = None,
) -> list[PushTokenPublic]:
    async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT token_id, enterprise_id, name, cameras, created_by, created_at, rotated_at, revoked_at"
            " FROM camera_push_tokens WHERE %(e)s::text IS NULL OR enterprise_id = %(e)s"
            " ORDER BY created_at, token_id",
            {"e": enterprise_id},
        )
        return [PushTokenPublic.model_validate(r) for r in await cur.fetchall()]


@router.post(
    "/{token_id}/rotate",
    responses={**_ERRORS, **_NOT_FOUND},
    summary="A new secret for a push token (the old one stops working; shown once)",
)
async def rotate(_principal: Operator, pool: Pool, token_id: TokenId) -> PushTokenIssued:
    with refusals():
        async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
            token = await rotate_push_token(conn, token_id)
    return PushTokenIssued(token_id=token_id, token=token)


@router.delete(
    "/{token_id}",
    status_code=204,
    response_class=Response,
    responses={**_ERRORS, **_NOT_FOUND},
    summary="Revoke a push token",
)
async def revoke(_principal: Operator, pool: Pool, token_id: TokenId) -> Response:
    with refusals():
        async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
            await revoke_push_token(conn, token_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
