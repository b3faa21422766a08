"""Password sign-in for people (`/api/v1/auth/login`, `/api/v1/auth/password`) and the supervisors'
account management (`/api/v1/accounts`). The hashing and lock-out rules live in vigil/accounts.py.

A sign-in answers the same session as a key exchange (`POST /api/v1/auth/session`): a `vt_…`
token that expires. Refusals: 401 for a wrong username or password (the same text for both, so
the answer does not say which usernames exist), 403 for a disabled account (only once its password
was right), 429 with Retry-After while the account is locked or the address is throttled.
"""

from __future__ import annotations

import logging
import math
from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response, status
from psycopg.rows import dict_row
from pydantic import AwareDatetime, BaseModel, Field

from api.auth import THROTTLED, Authenticated, Supervisor, presented_credential
from api.deps import ACQUIRE_TIMEOUT_S, Pool
from api.keys import Session
from api.models import ErrorBody
from api.throttle import FailedAuthLimiter
from vigil import accounts, metrics
from vigil.errors import InvalidRequest, NotFound
from vigil.events import ID_PATTERN
from vigil.settings import Settings

log = logging.getLogger(__name__)

WRONG = "wrong username or password"
LOCKED = "too many wrong passwords for this account; it is locked for a while, try again later"
DISABLED = "this account is disabled; ask a supervisor"

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "no valid credential"},
    403: {"model": ErrorBody, "description": "not allowed for this role"},
}
_USERNAME = Annotated[str, Path(pattern=accounts.USERNAME.pattern)]
_PASSWORD = Annotated[str, Field(min_length=1, max_length=accounts.MAX_PASSWORD)]


class Login(BaseModel):
    username: Annotated[str, Field(min_length=1, max_length=64, examples=["zhang-wei"])]
    password: _PASSWORD


class AccountSession(Session):
    account: str = Field(description="the username")
    staff_id: str | None = Field(description="the staff member a bureau account is; None for an enterprise's")
    must_change: bool = Field(description="the password was set by a supervisor: change it now")


class PasswordChange(BaseModel):
    old_password: _PASSWORD
    new_password: _PASSWORD


class AccountCreate(BaseModel):
    # Upper case is accepted and folded: the stored name is lower-case.
    username: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{2,63}$", examples=["zhang-wei"])]
    role: Literal["operator", "supervisor", "enterprise"]
    staff_id: Annotated[str | None, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")] = None
    enterprise_id: Annotated[str | None, Field(pattern=rf"^{ID_PATTERN.pattern}$")] = None
    display_name: Annotated[str | None, Field(min_length=1, max_length=200)] = None
    password: _PASSWORD | None = Field(default=None, description="omit: a temporary one is made")


class PasswordReset(BaseModel):
    password: _PASSWORD | None = Field(default=None, description="omit: a temporary one is made")


class AccountPassword(BaseModel):
    username: str
    temporary_password: str | None = Field(
        description="shown this once when the server made it; the person must change it at sign-in"
    )


class AccountPublic(BaseModel):
    username: str
    display_name: str
    role: Literal["operator", "supervisor", "enterprise"]
    staff_id: str | None
    enterprise_id: str | None
    must_change: bool
    locked_until: AwareDatetime | None
    disabled_at: AwareDatetime | None
    created_by: str
    created_at: AwareDatetime
    last_login_at: AwareDatetime | None


def _too_many(detail: str, wait: float) -> HTTPException:
    headers = {"Retry-After": str(max(1, math.ceil(wait)))}
    return HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, detail, headers=headers)


def make_router(settings: Settings) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["accounts"])
    hasher = accounts.Hasher(
        time_cost=settings.account_argon2_time_cost,
        memory_kib=settings.account_argon2_memory_kib,
        parallelism=settings.account_argon2_parallelism,
        slots=settings.account_hash_slots,
    )
    lockout = accounts.LockoutPolicy(
        settings.account_lockout_failures, settings.account_lockout_s, settings.account_lockout_max_s
    )

    async def check_and_count(pool: Pool, username: str, password: str) -> accounts.LoginRow | None:
        """The account's row when `password` is its password (rehashed if the cost changed); None
        otherwise, the failure counted. 429 while the account is locked: no password is checked."""
        row = None
        if accounts.USERNAME.match(username):  # no such account otherwise (and no NUL sent to SQL)
            async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn:
                row = await accounts.login_row(conn, username)
        if row is not None and row.locked_for_s is not None:
            metrics.api_auth_throttled.inc()
            raise _too_many(LOCKED, row.locked_for_s)
        # Outside any connection: the hash takes tens of milliseconds and must not hold one.
        ok, new_hash = await hasher.averify(row.password_hash if row else None, password)
        async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
            if not ok:
                locked = await accounts.record_failure(conn, username, lockout) if row else None
                if locked is not None:
                    log.warning(
                        "account %s locked for %.0fs after repeated wrong passwords", username, locked
                    )
                return None
            if row is not None and not row.disabled:
                await accounts.record_success(conn, username, new_hash)
        return row

    @router.post(
        "/auth/login",
        responses={
            401: {"model": ErrorBody, "description": WRONG},
            403: {"model": ErrorBody, "description": DISABLED},
            429: {
                "model": ErrorBody,
                "description": "account locked, or too many refusals from this address",
            },
        },
        summary="Sign in with a username and password: a short-lived session token",
    )
    async def login(body: Login, pool: Pool, request: Request) -> AccountSession:
        limiter: FailedAuthLimiter = request.app.state.auth_limiter
        address = request.client.host if request.client else "unknown"
        if (wait := limiter.retry_after(address)) is not None:
            metrics.api_auth_throttled.inc()
            raise _too_many(THROTTLED, wait)
        username = accounts.normalise_username(body.username)
        row = await check_and_count(pool, username, body.password)
        if row is None:
            limiter.failed(address)
            metrics.api_auth_failures.inc()
            log.warning("refused sign-in as %r from %s", username[:64], address)  # never the password
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, WRONG)
        if row.disabled:
            raise HTTPException(status.HTTP_403_FORBIDDEN, DISABLED)
        ttl = timedelta(seconds=request.app.state.session_ttl_s)
        async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
            token, expires_at = await accounts.open_session(conn, username, ttl)
            account = await accounts.identify_session(conn, token)
        assert account is not None
        log.info("account %s signed in from %s", username, address)
        return AccountSession(
            subject=account.display_name, role=account.role, enterprise_id=account.enterprise_id,
            account=account.username, staff_id=account.staff_id, token=token, expires_at=expires_at,
            must_change=row.must_change,
        )  # fmt: skip

    @router.post(
        "/auth/password",
        status_code=204,
        response_class=Response,
        responses={
            **_ERRORS,
            400: {"model": ErrorBody, "description": "not signed in with a password account"},
            403: {"model": ErrorBody, "description": "the current password is wrong"},
            422: {
                "model": ErrorBody,
                "description": "the new password is refused (length, common, username)",
            },
            429: {"model": ErrorBody, "description": "account locked after repeated wrong passwords"},
        },
        summary="Change your own password (the current one is required); your other sessions end",
    )
    async def change_password(
        principal: Authenticated, body: PasswordChange, pool: Pool, request: Request
    ) -> Response:
        if principal.account is None:
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST, "only a password account has a password to change"
            )
        username = principal.account
        try:
            accounts.check_password(body.new_password, username)
        except InvalidRequest as exc:
            raise HTTPException(422, str(exc)) from None
        # The current password counts towards the lock-out like a sign-in: a stolen session must
        # not become a way to guess it.
        if await check_and_count(pool, username, body.old_password) is None:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "the current password is wrong")
        if body.new_password == body.old_password:
            raise HTTPException(422, "the new password must differ from the current one")
        new_hash = await hasher.ahash(body.new_password)
        async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
            await accounts.set_password(
                conn, username, new_hash, must_change=False, keep_token=presented_credential(request)
            )
        log.info("account %s changed its password", username)
        return Response(status_code=204)

    @router.get("/accounts", responses=_ERRORS, summary="Password accounts (never their hashes)")
    async def list_accounts(
        _principal: Supervisor,
        pool: Pool,
        enterprise_id: Annotated[str | None, Query(pattern=rf"^{ID_PATTERN.pattern}$")] = None,
    ) -> list[AccountPublic]:
        async with (
            pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn,
            conn.cursor(row_factory=dict_row) as cur,
        ):
            await cur.execute(
                "SELECT username, display_name, role, staff_id, enterprise_id, must_change,"
                " CASE WHEN locked_until > now() THEN locked_until END AS locked_until, disabled_at,"
                " created_by, created_at, last_login_at FROM accounts"
                " WHERE %(e)s::text IS NULL OR enterprise_id = %(e)s ORDER BY username",
                {"e": enterprise_id},
            )
            return [AccountPublic.model_validate(r) for r in await cur.fetchall()]

    async def new_password(given: str | None, username: str) -> tuple[str, str | None]:
        """(hash, the temporary password when the server made one)."""
        if given is not None:
            try:
                accounts.check_password(given, username)
            except InvalidRequest as exc:
                raise HTTPException(422, str(exc)) from None
        password = given or accounts.temporary_password()
        return await hasher.ahash(password), None if given else password

    @router.post(
        "/accounts",
        status_code=201,
        responses={**_ERRORS, 422: {"model": ErrorBody, "description": "refused, with the reason"}},
        summary="Create a password account for a staff member or an enterprise user",
    )
    async def create(principal: Supervisor, pool: Pool, body: AccountCreate) -> AccountPassword:
        password_hash, temporary = await new_password(body.password, body.username)
        try:
            async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
                account = await accounts.create_account(
                    conn, username=body.username, role=body.role, password_hash=password_hash,
                    created_by=principal.actor, staff_id=body.staff_id, enterprise_id=body.enterprise_id,
                    display_name=body.display_name,
                )  # fmt: skip
        except (InvalidRequest, NotFound) as exc:
            raise HTTPException(422, str(exc)) from None
        log.info("%s created account %s (%s)", principal.actor, account.username, account.role)
        return AccountPassword(username=account.username, temporary_password=temporary)

    @router.post(
        "/accounts/{username}/password",
        responses={**_ERRORS, 404: {"model": ErrorBody, "description": "no such account"}},
        summary="Reset an account's password (it must be changed at sign-in); its sessions end",
    )
    async def reset(
        principal: Supervisor, pool: Pool, username: _USERNAME, body: PasswordReset | None = None
    ) -> AccountPassword:
        password_hash, temporary = await new_password(body.password if body else None, username)
        try:
            async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
                await accounts.set_password(conn, username, password_hash, must_change=True)
        except NotFound as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
        log.info("%s reset the password of account %s", principal.actor, username)
        return AccountPassword(username=username, temporary_password=temporary)

    for action in ("disable", "enable"):
        router.add_api_route(
            f"/accounts/{{username}}/{action}",
            _toggle(action == "disable"),
            methods=["POST"],
            status_code=204,
            response_class=Response,
            responses={**_ERRORS, 404: {"model": ErrorBody, "description": "no such account"}},
            summary=(
                "Disable an account: its sessions end now"
                if action == "disable"
                else "Enable an account again (and clear its lock-out)"
            ),
            name=f"{action}_account",
        )
    return router


def _toggle(disabled: bool) -> Any:
    async def toggle(principal: Supervisor, pool: Pool, username: _USERNAME) -> Response:
        try:
            async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
                await accounts.set_disabled(conn, username, disabled)
        except NotFound as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
        log.info("%s %s account %s", principal.actor, "disabled" if disabled else "enabled", username)
        return Response(status_code=204)

    return toggle
