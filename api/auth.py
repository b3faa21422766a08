"""Who is calling. Today there is one operator bearer token; roles, enterprise tenancy and per-key
credentials come later and slot in here without touching the routes, which only ask for the
`Operator` dependency alias.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

Role = Literal["operator"]


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller. `enterprise_id` is None for monitoring-centre staff, who see every
    enterprise; it will carry the tenant for enterprise credentials."""

    subject: str
    role: Role
    enterprise_id: str | None = None


class TokenAuthenticator:
    """Maps a presented bearer token to a Principal, in constant time per known token."""

    def __init__(self, operator_token: str) -> None:
        # Compare bytes, not str: compare_digest raises TypeError on non-ASCII str, and a header
        # value is attacker-controlled (Starlette decodes it as latin-1), so str would risk a 500.
        self._operator_token = operator_token.encode()

    def authenticate(self, presented: str) -> Principal | None:
        if hmac.compare_digest(presented.encode(), self._operator_token):
            return Principal(subject="operator", role="operator")
        return None


# auto_error=False: we raise our own 401 with the challenge header; the scheme still appears in
# the OpenAPI document so /docs offers an "Authorize" button.
_bearer = HTTPBearer(auto_error=False, description="Operator API token (VIGIL_API_TOKEN)")


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"}
    )


async def authenticate(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    if credentials is None:
        raise _unauthorized("missing bearer token")
    authenticator: TokenAuthenticator = request.app.state.authenticator
    principal = authenticator.authenticate(credentials.credentials)
    if principal is None:
        raise _unauthorized("invalid bearer token")
    return principal


async def require_operator(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
    if principal.role != "operator":  # every principal is an operator today; roles make this real
        raise HTTPException(status_code=status.HTTP_403_FORBIDDEN, detail="operator role required")
    return principal


Operator = Annotated[Principal, Depends(require_operator)]
