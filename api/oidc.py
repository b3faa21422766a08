"""Optional single sign-on with the bureau's OpenID provider (`VIGIL_OIDC_ISSUER`, client id and
secret): the authorization-code flow with PKCE (S256), `state` and `nonce`, and the id_token's
signature checked against the issuer's published keys (JWKS) by joserfc and its claims by Authlib's
`CodeIDToken` (issuer, audience, expiry, nonce, at_hash).

The person is never created here: the claim `VIGIL_OIDC_USERNAME_CLAIM` must name an existing
bureau password account, by its username or its staff id (`VIGIL_OIDC_MATCH`), that is enabled.
That first sign-in binds the account to the provider's identity (issuer and `sub`, migration 0019):
afterwards only that identity signs in as it, whatever its editable claims say.
The session opened is that account's, the same `vt_…` token a password sign-in opens
(`accounts.open_session`), so the audit names the same person however they signed in; enterprise
accounts are not offered: the bureau's provider knows the bureau's staff only.

The browser carries the flow's secrets in one cookie, encrypted and authenticated (JWE dir +
A256GCM) under a key derived from the client secret, so every API process can finish a flow another
began and nothing is stored: `start` puts state, nonce and the PKCE verifier there; `callback`
checks them and replaces the cookie with the new session token; the dashboard then collects the
token with `POST …/session` (same origin only), which clears it. The token is never in an address.
Without the cookie `callback` makes no request to the provider at all.

Routes exist only when single sign-on is configured (api/app.py); `GET /api/v1/ui/config` tells
the sign-in page whether to offer it.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal, cast
from urllib.parse import urlsplit

import httpx
import orjson
from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core import CodeIDToken
from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi.responses import RedirectResponse
from joserfc import jwe, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, OctKey
from joserfc.jws import JWSRegistry

from api.accounts import AccountSession
from api.deps import ACQUIRE_TIMEOUT_S, Pool
from api.models import ErrorBody
from vigil import accounts
from vigil.keys import credential_digest
from vigil.settings import Settings

if TYPE_CHECKING:
    from joserfc.jwk import KeySetSerialization
    from psycopg import AsyncConnection

log = logging.getLogger(__name__)

COOKIE = "vigil_sso"
# The person has this long at the provider (a password, a second factor) before the flow lapses.
FLOW_TTL_S = 600
# The dashboard collects the session at once; the cookie need not live longer.
HANDOFF_TTL_S = 60
METADATA_TTL_S = 3600
HTTP_TIMEOUT_S = 10.0
# The id_token's signature algorithms accepted, whatever the provider's discovery document lists:
# asymmetric only. `none` would take an unsigned token, and HS* a token "signed" with the client
# secret, which this client also holds.
SIGNING_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
CLOCK_LEEWAY_S = 60
# Where the callback sends the browser: the dashboard, relative to /api/v1/auth/oidc/callback so
# that it also holds behind a path-prefixing proxy.
DASHBOARD = "../../../../dashboard/"
Failure = Literal["denied", "failed", "no_account", "disabled", "bound"]


class SingleSignOnError(Exception):
    """The flow failed; `reason` is what the dashboard tells the person, the message is for the log."""

    def __init__(self, reason: Failure, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def verify_id_token(
    id_token: str,
    jwks: dict[str, Any],
    *,
    issuer: str,
    client_id: str,
    nonce: str,
    access_token: str | None,
    algorithms: list[str],
) -> dict[str, Any]:
    """The id_token's claims once its signature (against the provider's keys) and its claims hold;
    SingleSignOnError otherwise."""
    try:
        token = jwt.decode(
            id_token,
            KeySet.import_key_set(cast("KeySetSerialization", jwks)),
            registry=JWSRegistry(algorithms=algorithms),
        )
        claims = CodeIDToken(
            token.claims,
            token.header,
            {"iss": {"essential": True, "value": issuer}, "aud": {"essential": True, "value": client_id}},
            {"nonce": nonce, "client_id": client_id, "access_token": access_token},
        )
        claims.validate(now=int(time.time()), leeway=CLOCK_LEEWAY_S)
    except (JoseError, ValueError, TypeError) as exc:
        raise SingleSignOnError("failed", f"id_token refused: {exc!r}") from None
    # Authlib checks the nonce only when the token has one; the flow sent one, so it must be there.
    if claims.get("nonce") != nonce:
        raise SingleSignOnError("failed", "id_token refused: its nonce is not this flow's")
    return dict(claims)


def signing_algorithms(listed: object) -> list[str]:
    """The provider's listed algorithms that are also in SIGNING_ALGORITHMS (RS256 if it lists none,
    OIDC Discovery's default); a provider listing only unacceptable ones gets no sign-in."""
    if not isinstance(listed, list) or not listed:
        return ["RS256"]
    allowed = [a for a in listed if isinstance(a, str) and a in SIGNING_ALGORITHMS]
    if not allowed:
        raise SingleSignOnError("failed", f"the provider signs id_tokens with {listed!r} only")
    return allowed


class Provider:
    """The configured OpenID provider, its discovery document cached for an hour."""

    def __init__(self, settings: Settings) -> None:
        assert settings.oidc_issuer and settings.oidc_client_id and settings.oidc_client_secret
        # Kept exactly as configured: the id_token's `iss` must equal it, trailing slash and all
        # (Auth0's issuers end in one); only the discovery URL is built without it.
        self.issuer = settings.oidc_issuer
        self.client_id = settings.oidc_client_id
        self.client_secret = settings.oidc_client_secret.get_secret_value()
        self.claim = settings.oidc_username_claim
        self.match = settings.oidc_match
        self.scopes = settings.oidc_scopes
        self.redirect_uri = f"{settings.public_url.rstrip('/')}/api/v1/auth/oidc/callback"
        public = urlsplit(settings.public_url)
        self.secure_cookie = public.scheme == "https"
        self.origin = f"{public.scheme}://{public.netloc}"
        # A key of its own, not the client secret itself: the secret is also sent to the provider.
        self._key = OctKey.import_key(
            hashlib.sha256(b"vigil-sso-cookie\0" + self.client_secret.encode()).digest()
        )
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0

    async def metadata(self, http: httpx.AsyncClient) -> dict[str, Any]:
        if self._metadata is None or time.monotonic() - self._metadata_at > METADATA_TTL_S:
            response = await http.get(f"{self.issuer.rstrip('/')}/.well-known/openid-configuration")
            response.raise_for_status()
            found = response.json()
            # A discovery document that names another issuer is not this provider's (OIDC Discovery 4.3).
            if found.get("issuer") != self.issuer:
                raise SingleSignOnError(
                    "failed", f"the discovery document names issuer {found.get('issuer')!r}"
                )
            for field in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                if not isinstance(found.get(field), str):
                    raise SingleSignOnError("failed", f"the discovery document has no {field}")
            self._metadata, self._metadata_at = found, time.monotonic()
        return self._metadata

    def seal(self, content: dict[str, Any], ttl_s: int) -> str:
        body = orjson.dumps({**content, "exp": time.time() + ttl_s})
        return jwe.encrypt_compact({"alg": "dir", "enc": "A256GCM"}, body, self._key)

    def unseal(self, value: str | None, kind: str) -> dict[str, Any] | None:
        if not value:
            return None
        try:
            content = orjson.loads(jwe.decrypt_compact(value, self._key).plaintext or b"")
        except (JoseError, ValueError):
            return None  # not ours, altered, or sealed under a previous client secret
        if (
            not isinstance(content, dict)
            or content.get("kind") != kind
            or content.get("exp", 0) < time.time()
        ):
            return None
        return content

    async def authorization_url(self, http: httpx.AsyncClient) -> tuple[str, dict[str, Any]]:
        """Where to send the browser, and what the cookie must remember for the callback."""
        endpoint = (await self.metadata(http))["authorization_endpoint"]
        flow = {
            "kind": "flow",
            "state": secrets.token_urlsafe(32),
            "nonce": secrets.token_urlsafe(32),
            "verifier": secrets.token_urlsafe(64),  # 86 characters: RFC 7636 asks 43-128
        }
        challenge = create_s256_code_challenge(flow["verifier"])
        url = add_params_to_uri(endpoint, [
            ("response_type", "code"), ("client_id", self.client_id), ("redirect_uri", self.redirect_uri),
            ("scope", self.scopes), ("state", flow["state"]), ("nonce", flow["nonce"]),
            ("code_challenge", challenge), ("code_challenge_method", "S256"),
        ])  # fmt: skip
        return url, flow

    async def person(self, http: httpx.AsyncClient, code: str, flow: dict[str, Any]) -> tuple[str, str]:
        """(the claim that names the person, their identity: issuer and `sub`), from an id_token
        got for `code` and checked."""
        metadata = await self.metadata(http)
        response = await http.post(
            metadata["token_endpoint"],
            data={
                "grant_type": "authorization_code", "code": code, "redirect_uri": self.redirect_uri,
                "code_verifier": flow["verifier"], "client_id": self.client_id,
            },
            auth=(self.client_id, self.client_secret),
            headers={"Accept": "application/json"},
        )  # fmt: skip
        if response.status_code != 200:
            raise SingleSignOnError(
                "failed", f"token endpoint answered {response.status_code}: {response.text[:200]}"
            )
        tokens = response.json()
        if not isinstance(tokens.get("id_token"), str):
            raise SingleSignOnError("failed", "the token response has no id_token")
        keys = await http.get(metadata["jwks_uri"])
        keys.raise_for_status()
        claims = verify_id_token(
            tokens["id_token"], keys.json(), issuer=self.issuer, client_id=self.client_id,
            nonce=flow["nonce"], access_token=tokens.get("access_token"),
            algorithms=signing_algorithms(metadata.get("id_token_signing_alg_values_supported")),
        )  # fmt: skip
        value, sub = claims.get(self.claim), claims.get("sub")
        if not isinstance(sub, str) or not sub or len(sub) > 255:  # OpenID Connect: at most 255 ASCII
            raise SingleSignOnError("failed", "the id_token has no usable sub claim")
        if not isinstance(value, str) or not value:
            raise SingleSignOnError("no_account", f"the id_token has no {self.claim!r} claim")
        return value, f"{self.issuer} {sub}"


async def account_for(conn: AsyncConnection[Any], match: str, value: str, identity: str) -> str:
    """The username of the enabled bureau account this provider identity signs in as. An identity
    seen before is its account's whatever its claims say now; a new one is matched by the claim
    (`value`) to an account no identity holds yet, and bound to it, in the caller's transaction. So
    a person who edits their `preferred_username` at the provider cannot become someone else."""
    cur = await conn.execute(
        "SELECT username, disabled_at IS NOT NULL FROM accounts WHERE sso_identity = %s", (identity,)
    )
    row = await cur.fetchone()
    if row is None:
        column = "username" if match == "username" else "staff_id"
        wanted = accounts.normalise_username(value) if match == "username" else value
        cur = await conn.execute(
            f"SELECT username, disabled_at IS NOT NULL, sso_identity FROM accounts"  # noqa: S608 (column is one of two literals)
            f" WHERE {column} = %s AND staff_id IS NOT NULL AND role <> 'enterprise' FOR UPDATE",
            (wanted,),
        )
        found = await cur.fetchone()
        if found is None:
            raise SingleSignOnError("no_account", f"no bureau account has {column} {wanted!r}")
        if found[2] is not None:
            raise SingleSignOnError(
                "bound", f"account {found[0]} is bound to another identity at the provider"
            )
        row = found[:2]
        if not row[1]:
            await conn.execute(
                "UPDATE accounts SET sso_identity = %s WHERE username = %s", (identity, row[0])
            )
    if row[1]:
        raise SingleSignOnError("disabled", f"account {row[0]} is disabled")
    return str(row[0])


def make_router(settings: Settings) -> APIRouter:
    router = APIRouter(prefix="/api/v1/auth/oidc", tags=["accounts"])
    provider = Provider(settings)

    def cookie_path(request: Request) -> str:
        return f"{request.scope.get('root_path', '')}/api/v1/auth/oidc"

    def set_cookie(response: Response, request: Request, value: str, ttl_s: int) -> None:
        response.set_cookie(
            COOKIE, value, max_age=ttl_s, path=cookie_path(request), httponly=True,
            secure=provider.secure_cookie, samesite="lax",
        )  # fmt: skip

    @router.get(
        "/start",
        status_code=302,
        response_class=RedirectResponse,
        responses={502: {"model": ErrorBody, "description": "the provider cannot be reached"}},
        summary="Single sign-on: go to the bureau's OpenID provider",
    )
    async def start(request: Request) -> Response:
        try:
            async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_S) as http:
                url, flow = await provider.authorization_url(http)
        except (httpx.HTTPError, ValueError, SingleSignOnError) as exc:
            log.error("single sign-on: the provider %s cannot be used: %r", provider.issuer, exc)
            raise HTTPException(
                status.HTTP_502_BAD_GATEWAY, "the sign-on provider cannot be reached"
            ) from None
        response = RedirectResponse(url, status_code=302)
        set_cookie(response, request, provider.seal(flow, FLOW_TTL_S), FLOW_TTL_S)
        return response

    @router.get(
        "/callback",
        status_code=303,
        response_class=RedirectResponse,
        summary="Single sign-on: the provider's answer; back to the dashboard, signed in or told why not",
    )
    async def callback(
        request: Request,
        pool: Pool,
        code: str | None = None,
        state: str | None = None,
        error: str | None = None,
    ) -> Response:
        try:
            flow = provider.unseal(request.cookies.get(COOKIE), "flow")
            if flow is None:
                raise SingleSignOnError("failed", "this browser has no sign-on under way (or it lapsed)")
            # A refusal grants nothing, so it is reported even without the state (some providers
            # leave it off their error answers).
            if error is not None:
                raise SingleSignOnError("denied", f"the provider answered {error[:100]!r}")
            # The state must be this browser's own flow's: an answer meant for someone else's
            # browser (login CSRF) stops here, before any request to the provider.
            if (
                state is None
                or not code
                or not secrets.compare_digest(state.encode(), str(flow["state"]).encode())
            ):
                raise SingleSignOnError("failed", "the answer's state is not this browser's flow's")
            async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_S) as http:
                value, identity = await provider.person(http, code, flow)
            ttl = timedelta(seconds=request.app.state.session_ttl_s)
            async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
                username = await account_for(conn, provider.match, value, identity)
                token, _expires = await accounts.open_session(conn, username, ttl)
                # Only the sign-in time: the password's lock-out count is the password's business.
                await conn.execute(
                    "UPDATE accounts SET last_login_at = now() WHERE username = %s", (username,)
                )
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            failure = SingleSignOnError("failed", repr(exc))
            return _failed(request, cookie_path(request), failure, secure=provider.secure_cookie)
        except SingleSignOnError as exc:
            return _failed(request, cookie_path(request), exc, secure=provider.secure_cookie)
        address = request.client.host if request.client else "unknown"
        log.info(
            "account %s signed in by single sign-on (%s %r) from %s", username, provider.claim, value, address
        )
        response = RedirectResponse(f"{DASHBOARD}#/sso", status_code=303)
        set_cookie(
            response,
            request,
            provider.seal({"kind": "handoff", "token": token}, HANDOFF_TTL_S),
            HANDOFF_TTL_S,
        )
        return response

    @router.post(
        "/session",
        responses={401: {"model": ErrorBody, "description": "no single sign-on to collect"}},
        summary="Single sign-on: collect the session the callback opened (once; same origin only)",
    )
    async def collect(request: Request, response: Response, pool: Pool) -> AccountSession:
        # Same origin only: the dashboard's own fetch sends its Origin; a page of another origin
        # (a sibling subdomain is "same site", so SameSite=Lax lets its POST through) does not match.
        origin = request.headers.get("origin")
        if origin is not None and origin != provider.origin:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, "single sign-on is collected by the dashboard only"
            )
        handoff = provider.unseal(request.cookies.get(COOKIE), "handoff")
        response.delete_cookie(
            COOKIE, path=cookie_path(request), httponly=True, secure=provider.secure_cookie, samesite="lax"
        )
        if handoff is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "no single sign-on to collect; sign in again")
        token = str(handoff["token"])
        async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn:
            account = await accounts.identify_session(conn, token)
            cur = await conn.execute(
                "SELECT expires_at FROM account_sessions WHERE token_sha256 = %s", (credential_digest(token),)
            )
            row = await cur.fetchone()
        if account is None or row is None:  # disabled or signed out in the meantime
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "that session has ended; sign in again")
        return AccountSession(
            subject=account.display_name, role=account.role, enterprise_id=account.enterprise_id,
            account=account.username, staff_id=account.staff_id, token=token, expires_at=row[0],
            # The provider vouched for the person: a temporary password need not be replaced to use
            # the dashboard, but the account page still says so when it is.
            must_change=False,
        )  # fmt: skip

    return router


def _failed(request: Request, path: str, exc: SingleSignOnError, *, secure: bool) -> Response:
    address = request.client.host if request.client else "unknown"
    log.warning("single sign-on from %s refused (%s): %s", address, exc.reason, exc)
    response = RedirectResponse(f"{DASHBOARD}#sso-error={exc.reason}", status_code=303)
    response.delete_cookie(COOKIE, path=path, httponly=True, secure=secure, samesite="lax")
    return response
