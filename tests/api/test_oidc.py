"""Single sign-on (api/oidc.py) against a real OpenID provider: oidc-provider-mock, built from
Authlib's own authorization-server and OpenID grant classes, serving discovery, the authorization
form, the token endpoint and its JWKS on a free port in a thread. The person "signs in" there by
posting the provider's form, as a browser would; everything on Vigil's side is the real app.

The provider does not enforce PKCE (it registers no code-challenge extension), so the tests check
that Vigil sends a proper S256 challenge and its verifier; the id_token checks (signature against
the JWKS, issuer, audience, nonce) are also run on tokens signed here with keys of our own."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from oidc_provider_mock import run_server_in_thread
from pydantic import SecretStr, ValidationError

from api import create_app
from api.oidc import SingleSignOnError, signing_algorithms, verify_id_token
from tests.api.conftest import bearer
from tests.lifecycle import Site, open_alert, staffed_site, violation
from vigil.accounts import Hasher, create_account, unlink_sso
from vigil.settings import Settings

# The provider's own code still calls an Authlib hook that Authlib has deprecated: not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:get_jwt_config:DeprecationWarning")

CLIENT_ID = "vigil-dashboard"
SECRET = "sso-client-secret-0123456789abcdef"


@pytest.fixture
def provider() -> Iterator[str]:
    with run_server_in_thread() as server:
        yield f"http://localhost:{server.server_port}"


@pytest.fixture
def api_settings(api_settings: Settings, provider: str) -> Settings:
    return api_settings.model_copy(
        update={
            "oidc_issuer": provider,
            "oidc_client_id": CLIENT_ID,
            "oidc_client_secret": SecretStr(SECRET),
            "public_url": "http://test",
        }
    )


@pytest.fixture
async def browser(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The person's browser at Vigil: no credential, keeps cookies."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
        yield c


@pytest.fixture
async def site(pool: Any, uid: str) -> Site:
    return await staffed_site(pool, f"sso{uid}")


async def _account(pool: Any, username: str, **fields: Any) -> None:
    async with pool.connection() as conn, conn.transaction():
        await create_account(
            conn, username=username, password_hash=Hasher(time_cost=1, memory_kib=8192, parallelism=1).hash(
                "unused-Pass-2024"
            ), created_by="test", **fields,
        )  # fmt: skip


async def _person(provider: str, sub: str, **claims: Any) -> None:
    async with httpx.AsyncClient() as http:
        assert (await http.put(f"{provider}/users/{sub}", json=claims)).status_code == 204


async def _sign_in(
    browser: httpx.AsyncClient, sub: str, *, deny: bool = False
) -> tuple[httpx.Response, dict[str, list[str]]]:
    """Start at Vigil, answer the provider's form as `sub`, come back: (Vigil's answer, the
    authorization request's parameters)."""
    start = await browser.get("/api/v1/auth/oidc/start")
    assert start.status_code == 302, start.text
    authorize = start.headers["location"]
    async with httpx.AsyncClient() as at_provider:
        answer = await at_provider.post(authorize, data={"action": "deny"} if deny else {"sub": sub})
    assert answer.status_code == 302, answer.text
    back = urlsplit(answer.headers["location"])
    assert f"{back.scheme}://{back.netloc}{back.path}" == "http://test/api/v1/auth/oidc/callback"
    return await browser.get(f"{back.path}?{back.query}"), parse_qs(urlsplit(authorize).query)


async def test_a_staff_member_signs_in_by_the_provider_with_the_same_session_as_a_password(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, provider: str, pool: Any, uid: str, site: Site
) -> None:
    assert (await browser.get("/api/v1/ui/config")).json()["single_sign_on"] is True
    username, staff_id = f"zw-sso{uid}", site.staff["A"]
    await _account(pool, username, role="operator", staff_id=staff_id)
    await _person(provider, f"sub-{uid}", preferred_username=username.upper())  # names fold to lower case

    back, asked = await _sign_in(browser, f"sub-{uid}")
    assert back.status_code == 303 and back.headers["location"] == "../../../../dashboard/#/sso", back.text
    assert "vt_" not in back.headers["location"]  # the token never travels in an address
    # The authorization request: the code flow, PKCE S256, a state and a nonce of this flow.
    assert asked["response_type"] == ["code"] and asked["client_id"] == [CLIENT_ID]
    assert asked["code_challenge_method"] == ["S256"] and len(asked["code_challenge"][0]) == 43
    assert len(asked["state"][0]) >= 32 and len(asked["nonce"][0]) >= 32 and "openid" in asked["scope"][0]

    r = await browser.post("/api/v1/auth/oidc/session")
    assert r.status_code == 200, r.text
    s = r.json()
    assert s["token"].startswith("vt_") and (s["account"], s["staff_id"], s["role"]) == (
        username,
        staff_id,
        "operator",
    )
    assert s["subject"] == "handler A" and s["must_change"] is False
    # Collected once: the cookie is gone.
    assert (await browser.post("/api/v1/auth/oidc/session")).status_code == 401

    # The session is a password account's session: the audit names the person.
    alert = await open_alert(pool, violation(site))
    r = await browser.post(
        f"/api/v1/alerts/{alert['alert_id']}/ack", json={"note": "sso"}, headers=bearer(s["token"])
    )
    assert r.status_code == 200, r.text
    detail = (await client.get(f"/api/v1/alerts/{alert['alert_id']}")).json()
    assert [e["actor"] for e in detail["audit"] if e["action"] == "operator_acknowledged"] == [
        f"staff:{staff_id} (handler A)"
    ]
    assert (await browser.delete("/api/v1/auth/session", headers=bearer(s["token"]))).status_code == 204
    assert (await browser.get("/api/v1/alerts", headers=bearer(s["token"]))).status_code == 401


async def test_who_the_provider_vouches_for_still_needs_an_enabled_bureau_account(
    browser: httpx.AsyncClient, provider: str, pool: Any, uid: str, site: Site, app: FastAPI
) -> None:
    def refused(r: httpx.Response) -> str:
        assert r.status_code == 303, r.text
        location = r.headers["location"]
        assert location.startswith("../../../../dashboard/#sso-error="), location
        return location.rsplit("=", 1)[1]

    # Nobody by that name, and an enterprise account of that name: neither is a bureau account.
    await _person(provider, f"nobody-{uid}", preferred_username=f"nobody-{uid}")
    assert refused((await _sign_in(browser, f"nobody-{uid}"))[0]) == "no_account"
    await _account(pool, f"mgr-sso{uid}", role="enterprise", enterprise_id=site.enterprise_id)
    await _person(provider, f"mgr-{uid}", preferred_username=f"mgr-sso{uid}")
    assert refused((await _sign_in(browser, f"mgr-{uid}"))[0]) == "no_account"
    # No claim at all (the provider's default person carries only an email).
    assert refused((await _sign_in(browser, f"plain-{uid}"))[0]) == "no_account"
    # Disabled.
    await _account(pool, f"off-sso{uid}", role="operator", staff_id=site.staff["B"])
    async with pool.connection() as conn:
        await conn.execute("UPDATE accounts SET disabled_at = now() WHERE username = %s", (f"off-sso{uid}",))
    await _person(provider, f"off-{uid}", preferred_username=f"off-sso{uid}")
    assert refused((await _sign_in(browser, f"off-{uid}"))[0]) == "disabled"
    # The person declined at the provider.
    assert refused((await _sign_in(browser, "anyone", deny=True))[0]) == "denied"
    # An answer that is not this browser's flow (no cookie, or another state) is refused outright.
    await browser.get("/api/v1/auth/oidc/start")
    for state in ("forged", "状态"):  # compared in constant time, whatever it is
        callback = await browser.get("/api/v1/auth/oidc/callback", params={"code": "x", "state": state})
        assert refused(callback) == "failed"
        await browser.get("/api/v1/auth/oidc/start")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as other:
        assert (
            refused(await other.get("/api/v1/auth/oidc/callback", params={"code": "x", "state": "x"}))
            == "failed"
        )
    # Nothing to collect after a refusal.
    assert (await browser.post("/api/v1/auth/oidc/session")).status_code == 401


async def test_matching_by_staff_id_and_off_by_default(
    api_settings: Settings, provider: str, pool: Any, uid: str, site: Site
) -> None:
    staff_id = site.staff["C"]
    await _account(pool, f"wf-sso{uid}", role="supervisor", staff_id=staff_id)
    await _person(provider, f"c-{uid}", employee=staff_id, preferred_username="someone-else")
    by_staff = api_settings.model_copy(update={"oidc_match": "staff_id", "oidc_username_claim": "employee"})
    async with _app(by_staff) as browser:
        back, _ = await _sign_in(browser, f"c-{uid}")
        assert back.headers["location"].endswith("#/sso"), back.headers["location"]
        s = (await browser.post("/api/v1/auth/oidc/session")).json()
        assert (s["account"], s["staff_id"], s["role"]) == (f"wf-sso{uid}", staff_id, "supervisor")
    # Unset issuer: no routes, and the sign-in page is told not to offer it.
    async with _app(api_settings.model_copy(update={"oidc_issuer": None})) as browser:
        assert (await browser.get("/api/v1/ui/config")).json()["single_sign_on"] is False
        assert (await browser.get("/api/v1/auth/oidc/start")).status_code == 404


async def test_the_first_sign_in_binds_the_account_to_that_identity_whatever_its_claims_say_later(
    browser: httpx.AsyncClient, provider: str, pool: Any, uid: str, site: Site
) -> None:
    mine, theirs = f"me-sso{uid}", f"boss-sso{uid}"
    await _account(pool, mine, role="operator", staff_id=site.staff["A"])
    await _account(pool, theirs, role="supervisor", staff_id=site.staff["B"])

    async def signed_in_as(sub: str) -> str:
        back, _ = await _sign_in(browser, sub)
        location = back.headers["location"]
        if not location.endswith("#/sso"):
            return location.rsplit("=", 1)[1]
        return str((await browser.post("/api/v1/auth/oidc/session")).json()["account"])

    await _person(provider, f"a-{uid}", preferred_username=mine)
    assert await signed_in_as(f"a-{uid}") == mine
    # The person edits their name at the provider to a supervisor's: still their own account.
    await _person(provider, f"a-{uid}", preferred_username=theirs)
    assert await signed_in_as(f"a-{uid}") == mine
    # Another identity claiming the bound account's name is refused, and binds nothing.
    await _person(provider, f"b-{uid}", preferred_username=mine)
    assert await signed_in_as(f"b-{uid}") == "bound"
    # The supervisor's own first sign-in binds theirs.
    await _person(provider, f"boss-{uid}", preferred_username=theirs)
    assert await signed_in_as(f"boss-{uid}") == theirs
    # Unlinked (`vigil accounts sso-unlink`): the next identity to claim it binds it.
    async with pool.connection() as conn, conn.transaction():
        assert await unlink_sso(conn, mine) is True
        assert await unlink_sso(conn, mine) is False
    assert await signed_in_as(f"b-{uid}") == mine
    # The first identity, unlinked, is a stranger now: its claim names the supervisor (bound to
    # their own identity), and its old name is b's.
    assert await signed_in_as(f"a-{uid}") == "bound"
    await _person(provider, f"a-{uid}", preferred_username=mine)
    assert await signed_in_as(f"a-{uid}") == "bound"


@asynccontextmanager
async def _app(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    application = create_app(settings)
    async with (
        application.router.lifespan_context(application),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://test") as c,
    ):
        yield c


def _signed(key: RSAKey, kid: str | None = None, **claims: Any) -> str:
    now = int(time.time())
    body = {
        "iss": "https://sso.example",
        "aud": CLIENT_ID,
        "sub": "s",
        "iat": now,
        "exp": now + 300,
        "nonce": "n1",
    }
    return jwt.encode({"alg": "RS256", "kid": kid or key.kid}, {**body, **claims}, key)


def test_the_id_token_is_checked_against_the_providers_keys_and_this_flow() -> None:
    own, foreign = RSAKey.generate_key(2048, auto_kid=True), RSAKey.generate_key(2048, auto_kid=True)
    jwks = KeySet([own]).as_dict(private=False)
    check = {
        "issuer": "https://sso.example",
        "client_id": CLIENT_ID,
        "nonce": "n1",
        "access_token": None,
        "algorithms": ["RS256"],
    }
    assert verify_id_token(_signed(own), jwks, **check)["sub"] == "s"
    for token in (
        _signed(foreign),  # signed by a key the provider does not publish
        _signed(foreign, kid=own.kid),  # ... claiming to be the provider's key
        _signed(own, iss="https://evil.example"),
        _signed(own, aud="another-client"),
        _signed(own, nonce="replayed"),
        _signed(own, nonce=None),
        _signed(own, exp=int(time.time()) - 3600),
    ):
        with pytest.raises(SingleSignOnError):
            verify_id_token(token, jwks, **check)


def test_only_asymmetric_signatures_whatever_the_provider_lists() -> None:
    # `none` would accept an unsigned id_token, HS256 one "signed" with the client secret.
    assert signing_algorithms(["none", "HS256", "RS256", "ES256"]) == ["RS256", "ES256"]
    assert signing_algorithms(None) == signing_algorithms([]) == ["RS256"]
    with pytest.raises(SingleSignOnError, match="none"):
        signing_algorithms(["none"])


async def test_the_session_is_collected_by_the_dashboards_origin_only(browser: httpx.AsyncClient) -> None:
    foreign = await browser.post("/api/v1/auth/oidc/session", headers={"Origin": "https://other.test"})
    assert foreign.status_code == 403
    assert (
        await browser.post("/api/v1/auth/oidc/session", headers={"Origin": "http://test"})
    ).status_code == 401


def test_single_sign_on_settings_are_all_or_nothing() -> None:
    base = {
        "oidc_issuer": "https://sso.example",
        "oidc_client_id": CLIENT_ID,
        "public_url": "https://vigil.example",
    }
    with pytest.raises(ValidationError, match="VIGIL_OIDC_CLIENT_SECRET"):
        Settings(**base)
    with pytest.raises(ValidationError, match="https"):
        Settings(**{**base, "oidc_issuer": "http://sso.example", "oidc_client_secret": SECRET})
    with pytest.raises(ValidationError, match="at least 16"):
        Settings(**base, oidc_client_secret="short")
    with pytest.raises(ValidationError, match="VIGIL_PUBLIC_URL"):
        Settings(**{**base, "public_url": "http://vigil.example"}, oidc_client_secret=SECRET)
    assert Settings(**base, oidc_client_secret=SECRET).oidc_username_claim == "preferred_username"
