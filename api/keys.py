"""Browser sessions (`/api/v1/auth/…`) and API key management for supervisors (`/api/v1/keys`)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Request, Response, status
from psycopg.rows import dict_row
from pydantic import BaseModel, Field

from api.auth import Authenticated, Supervisor, presented_credential
from api.deps import ACQUIRE_TIMEOUT_S, Pool
from api.models import ErrorBody
from vigil import accounts
from vigil.errors import InvalidRequest, NotFound
from vigil.events import ID_PATTERN
from vigil.keys import create_key, end_session, open_session, revoke_key

router = APIRouter(prefix="/api/v1", tags=["auth"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "no valid credential"},
    403: {"model": ErrorBody, "description": "not allowed for this role"},
}


class Me(BaseModel):
    subject: str
    role: Literal["operator", "supervisor", "enterprise"]
    enterprise_id: str | None


class AccountMe(Me):
    """A person signed in with a password account (api/accounts.py), rather than a key."""

    account: str = Field(description="the username")
    staff_id: str | None = Field(description="the staff member a bureau account is; None for an enterprise's")


class Session(Me):
    token: str = Field(description="send as `Authorization: Bearer …` until it expires")
    expires_at: datetime


class KeyCreate(BaseModel):
    name: Annotated[str, Field(min_length=1, max_length=200, examples=["Noodle House ERP"])]
    role: Literal["operator", "supervisor", "enterprise"]
    enterprise_id: Annotated[str | None, Field(pattern=rf"^{ID_PATTERN.pattern}$")] = None


class KeyCreated(BaseModel):
    key_id: str
    key: str = Field(description="the whole key: shown this once, stored only as a hash")


class KeyPublic(BaseModel):
    key_id: str
    name: str
    role: Literal["operator", "supervisor", "enterprise"]
    enterprise_id: str | None
    created_by: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


@router.get("/auth/me", responses=_ERRORS, summary="Who the credential belongs to")
async def me(principal: Authenticated) -> Me | AccountMe:
    if principal.account is not None:
        return AccountMe(
            subject=principal.subject, role=principal.role, enterprise_id=principal.enterprise_id,
            account=principal.account, staff_id=principal.staff_id,
        )  # fmt: skip
    return Me(subject=principal.subject, role=principal.role, enterprise_id=principal.enterprise_id)


@router.post(
    "/auth/session",
    responses={**_ERRORS, 400: {"model": ErrorBody, "description": "not an API key"}},
    summary="Exchange an API key for a short-lived browser session token",
)
async def create_session(principal: Authenticated, pool: Pool, request: Request) -> Session:
    if principal.key_id is None or principal.session:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "sessions are opened with an API key")
    ttl = timedelta(seconds=request.app.state.session_ttl_s)
    async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn:
        token, expires_at = await open_session(conn, principal.key_id, ttl)
    return Session(
        subject=principal.subject, role=principal.role, enterprise_id=principal.enterprise_id,
        token=token, expires_at=expires_at,
    )  # fmt: skip


@router.delete(
    "/auth/session",
    status_code=204,
    response_class=Response,
    responses={**_ERRORS, 400: {"model": ErrorBody, "description": "not a session token"}},
    summary="Sign out: end this session token now, on the server (its live streams end too)",
)
async def delete_session(principal: Authenticated, pool: Pool, request: Request) -> Response:
    # The dashboard's "Sign out" calls this: forgetting the token in the browser alone would leave
    # it working for the rest of its TTL for whoever copied it.
    token = presented_credential(request)
    if not principal.session or token is None:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, "only a session token can be signed out; revoke a key instead"
        )
    async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn:
        if principal.account is not None:
            await accounts.end_session(conn, token)
        else:
            await end_session(conn, token)
    return Response(status_code=204)


@router.post("/keys", status_code=201, responses=_ERRORS, summary="Create an API key (shown once)")
async def create(principal: Supervisor, pool: Pool, body: KeyCreate) -> KeyCreated:
    try:
        async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
            key_id, key = await create_key(
                conn, name=body.name, role=body.role, enterprise_id=body.enterprise_id,
                created_by=principal.actor,
            )  # fmt: skip
    except (InvalidRequest, NotFound) as exc:
        raise HTTPException(422, str(exc)) from None
    return KeyCreated(key_id=key_id, key=key)


@router.get("/keys", responses=_ERRORS, summary="API keys (never their secrets)")
async def list_keys(_principal: Supervisor, pool: Pool) -> list[KeyPublic]:
    async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT key_id, name, role, enterprise_id, created_by, created_at, last_used_at, revoked_at"
            " FROM api_keys ORDER BY created_at, key_id"
        )
        return [KeyPublic.model_validate(r) for r in await cur.fetchall()]


@router.delete(
    "/keys/{key_id}",
    status_code=204,
    response_class=Response,
    responses={**_ERRORS, 404: {"model": ErrorBody, "description": "no such key"}},
    summary="Revoke a key and end its sessions",
)
async def revoke(
    _principal: Supervisor, pool: Pool, key_id: Annotated[str, Path(pattern=r"^[0-9a-f]{12}$")]
) -> Response:
    try:
        async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
            await revoke_key(conn, key_id)
    except NotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    return Response(status_code=204)
