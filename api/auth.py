"""Who is calling, and what they may do.

Credentials, all as `Authorization: Bearer …`:
- an API key (`vigil_…`, from `vigil keys create` or the supervisor API), stored hashed;
- a browser session token (`vt_…`), exchanged for a key at `POST /api/v1/auth/session`, or opened
  by a person's username and password at `POST /api/v1/auth/login` (api/accounts.py), short-lived;
- the optional operator token `VIGIL_API_TOKEN` (generated in demo mode).

Roles: `operator` (the monitoring centre), `supervisor` (an operator who also manages staff,
sites, devices, cameras and keys) and `enterprise` (one enterprise's own notices and alerts only).
Routes ask for one of the `Annotated` aliases below; tenancy is decided here, not in each route.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.deps import ACQUIRE_TIMEOUT_S, Pool, get_pool
from api.models import ErrorBody
from api.throttle import FailedAuthLimiter
from vigil import metrics
from vigil.accounts import identify_session
from vigil.keys import Role, identify

log = logging.getLogger(__name__)

# The refusal every route behind a credential documents.
AUTH_ERRORS: dict[int | str, dict[str, Any]] = {401: {"model": ErrorBody, "description": "no valid token"}}
# Every credential that is refused counts against the caller's address (api/throttle.py).
THROTTLED = "too many refused credentials from this address; try again later"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller. `enterprise_id` is None for bureau staff, who see every enterprise,
    and the tenant for an enterprise key."""

    subject: str
    role: Role
    enterprise_id: str | None = None
    key_id: str | None = None
    session: bool = False  # authenticated by a browser session token, not by the key itself
    # A person's password account (its username) rather than a key; a bureau account's staff id.
    account: str | None = None
    staff_id: str | None = None

    @property
    def actor(self) -> str:
        """How the audit trail names this caller: a person by their staff id (or enterprise
        account) and name, a key by its name."""
        if self.account is not None:
            if self.enterprise_id:
                return f"enterprise:{self.enterprise_id}:account:{self.account} ({self.subject})"
            return f"staff:{self.staff_id} ({self.subject})"
        return (
            f"enterprise:{self.enterprise_id}:{self.subject}"
            if self.enterprise_id
            else f"{self.role}:{self.subject}"
        )


class TokenAuthenticator:
    """The optional static operator token, compared in constant time."""

    def __init__(self, operator_token: str | None) -> None:
        # Compare bytes, not str: compare_digest raises TypeError on non-ASCII str, and a header
        # value is attacker-controlled (Starlette decodes it as latin-1), so str would risk a 500.
        self._operator_token = operator_token.encode() if operator_token else None

    def authenticate(self, presented: str) -> Principal | None:
        if self._operator_token is not None and hmac.compare_digest(presented.encode(), self._operator_token):
            return Principal(subject="operator", role="operator")
        return None


# auto_error=False: we raise our own 401 with the challenge header; the scheme still appears in
# the OpenAPI document so /docs offers an "Authorize" button.
_bearer = HTTPBearer(auto_error=False, description="An API key, a session token, or VIGIL_API_TOKEN")


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"}
    )


async def authenticate(
    request: Request,
    pool: Pool,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None:
        raise _unauthorized("missing bearer token")
    presented = credentials.credentials
    limiter: FailedAuthLimiter = request.app.state.auth_limiter
    address = request.client.host if request.client else "unknown"
    if (wait := limiter.retry_after(address)) is not None:
        metrics.api_auth_throttled.inc()
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, THROTTLED, headers={"Retry-After": str(wait)})
    authenticator: TokenAuthenticator = request.app.state.authenticator
    principal = authenticator.authenticate(presented)
    if principal is not None:
        return principal
    identity = account = None
    if len(presented) <= 200 and presented.isascii():  # no key or token is longer, or not ASCII
        async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn:
            identity = await identify(conn, presented)
            if identity is None:  # a session token is a key's or an account's
                account = await identify_session(conn, presented)
    if account is not None:
        return Principal(
            account.display_name, account.role, account.enterprise_id,
            session=True, account=account.username, staff_id=account.staff_id,
        )  # fmt: skip
    if identity is None:
        limiter.failed(address)
        metrics.api_auth_failures.inc()
        # Never the credential itself: a mistyped key is most of a real key.
        log.warning("refused credential from %s on %s %s", address, request.method, request.url.path)
        raise _unauthorized("invalid bearer token")
    return Principal(identity.name, identity.role, identity.enterprise_id, identity.key_id, identity.session)


def presented_credential(request: Request) -> str | None:
    """The bearer credential of this request, as presented (None without one)."""
    scheme, _, credential = request.headers.get("authorization", "").partition(" ")
    return credential.strip() if scheme.lower() == "bearer" and credential.strip() else None


async def still_valid(request: Request, principal: Principal) -> bool:
    """Whether the credential that authenticated `principal` would be accepted now: False once its
    key is revoked or its session has expired or been signed out. For long-lived responses (the
    live stream), which would otherwise outlive the credential they were opened with."""
    presented = presented_credential(request)
    if presented is None:
        return False
    authenticator: TokenAuthenticator = request.app.state.authenticator
    if authenticator.authenticate(presented) is not None:
        return True
    pool = get_pool(request)
    async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn:
        if principal.account is not None:  # disabled, signed out or expired: None
            account = await identify_session(conn, presented)
            return account is not None and account.username == principal.account
        identity = await identify(conn, presented)
    return identity is not None and identity.key_id == principal.key_id


def _require(*roles: Role, what: str) -> object:
    async def check(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        if principal.role not in roles:
            raise HTTPException(status_code=status.HTTP_403_FORBIDDEN, detail=f"{what} role required")
        return principal

    return check


# Any valid credential (routes that scope by the principal's enterprise themselves).
Authenticated = Annotated[Principal, Depends(authenticate)]
# The monitoring centre: operators and supervisors, every enterprise.
Operator = Annotated[Principal, Depends(_require("operator", "supervisor", what="operator"))]
# Registry and key management.
Supervisor = Annotated[Principal, Depends(_require("supervisor", what="supervisor"))]
# One enterprise, its own data only.
EnterpriseUser = Annotated[Principal, Depends(_require("enterprise", what="enterprise"))]
