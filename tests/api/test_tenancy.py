"""An enterprise key reads nothing of another enterprise: every route of the app, not a sample.

The test walks every operation of the OpenAPI document. Each path parameter is filled with an id
that belongs to the *victim* enterprise, each list is asked with the victim's ids as filters, and
the caller is another enterprise's key. A route answers 401/403/404/405/409/422, or it answers
with a body in which nothing of the victim appears. A route whose path parameter the test cannot
fill fails the test, so a new endpoint cannot slip past it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import cv2
import httpx
import numpy as np
import pytest

from alerts import lifecycle
from tests.api.conftest import bearer, make_key
from tests.lifecycle import POLICY, Site, act, open_alert, staffed_site, submit, violation
from vigil.accounts import Hasher, create_account
from vigil.keys import issue_push_token

# Routes that never return tenant data whatever the caller: probes and documentation.
_PUBLIC = {"/healthz", "/readyz", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
# Long-lived streams are read over real HTTP by a test of their own.
_STREAMS = {"/api/v1/stream"}
_REFUSED = {401, 403, 404, 405, 409, 413, 415, 422}
# Writes that act on the caller itself, never on an enterprise's data: opening its own session,
# and signing it out.
_SELF = {("POST", "/api/v1/auth/session"), ("DELETE", "/api/v1/auth/session")}


@dataclass
class Victim:
    site: Site
    marker: str
    ids: dict[str, str]


@pytest.fixture
async def victim(pool, uid: str, app) -> Victim:
    """Everything one enterprise can have: an alert with evidence, notices, a rectification with a
    photo, a device, a camera, staff, a key and a follow-up visit."""
    marker = f"victim{uid}"
    site = await staffed_site(pool, marker)
    store = app.state.evidence
    ok, jpeg = cv2.imencode(".jpg", np.full((32, 32, 3), 80, np.uint8))
    assert ok
    snapshot = store.put(jpeg.tobytes()) if store is not None else hashlib.sha256(b"x").hexdigest()
    v = dataclasses.replace(violation(site), evidence={"snapshot_sha256": snapshot})
    a = await open_alert(pool, v)
    await submit(pool, site, a["alert_id"], f"fixed by {marker}")
    async with pool.connection() as conn, conn.transaction():
        await conn.execute("UPDATE alerts SET penalty_case = true WHERE alert_id = %s", (a["alert_id"],))
    await act(pool, lifecycle.verify, a["alert_id"], actor="operator:t", policy=POLICY)
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO devices (device_id, enterprise_id, site_id, profile) VALUES (%s, %s, %s, 'freezer')",
            (f"dev-{marker}", site.enterprise_id, site.site_id),
        )
        await conn.execute(
            "INSERT INTO cameras (camera_id, enterprise_id, site_id, source) VALUES (%s, %s, %s, 'push')",
            (f"cam-{marker}", site.enterprise_id, site.site_id),
        )
        visit = await (
            await conn.execute("SELECT visit_id FROM follow_up_visits WHERE alert_id = %s", (a["alert_id"],))
        ).fetchone()
        notice = await (
            await conn.execute("SELECT notice_id FROM notices WHERE alert_id = %s LIMIT 1", (a["alert_id"],))
        ).fetchone()
        push_token_id, _ = await issue_push_token(
            conn,
            enterprise_id=site.enterprise_id,
            name=f"box {marker}",
            cameras=[f"cam-{marker}"],
            created_by="t",
        )
        # A password account of the victim enterprise (the /api/v1/accounts/{username} routes).
        await create_account(
            conn, username=f"acc-{marker}", role="enterprise", enterprise_id=site.enterprise_id,
            password_hash=Hasher(time_cost=1, memory_kib=8192, parallelism=1).hash("victim-password"),
            created_by="t",
        )  # fmt: skip
    victim_key = await make_key(pool, "enterprise", site.enterprise_id)
    assert visit is not None and notice is not None
    ids = {
        "alert_id": a["alert_id"],
        "enterprise_id": site.enterprise_id,
        "site_id": site.site_id,
        "device_id": f"dev-{marker}",
        "camera_id": f"cam-{marker}",
        "staff_id": site.staff["A"],
        "notice_id": notice[0],
        "visit_id": str(visit[0]),
        "sha256": snapshot,
        "key_id": victim_key.split("_")[1],
        "token_id": push_token_id,
        "username": f"acc-{marker}",
    }
    return Victim(site, marker, ids)


def _routes(app: Any) -> list[tuple[str, str]]:
    """Every operation in the OpenAPI document (which schemathesis holds to the real routes)."""
    found = []
    for path, operations in app.openapi()["paths"].items():
        if path in _PUBLIC:
            continue
        found += [(method.upper(), path) for method in sorted(operations) if method != "head"]
    return found


def _fill(path: str, ids: dict[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        name = match.group(1).split(":")[0]
        if name not in ids:
            raise AssertionError(f"{path}: no victim id for path parameter {{{name}}}; teach this test")
        return ids[name]

    return re.sub(r"\{([^}]+)\}", one, path)


async def _account_session(client, pool, enterprise_id: str, username: str) -> str:
    """A session of an enterprise password account, signed in as a person would."""
    async with pool.connection() as conn, conn.transaction():
        await create_account(
            conn, username=username, role="enterprise", enterprise_id=enterprise_id,
            password_hash=Hasher().hash("caller-password"), created_by="t",
        )  # fmt: skip
    r = await client.post("/api/v1/auth/login", json={"username": username, "password": "caller-password"})
    assert r.status_code == 200, r.text
    token: str = r.json()["token"]
    return token


# The same walk for an enterprise key and for an enterprise user's password session.
@pytest.mark.parametrize("credential", ["key", "account"])
async def test_an_enterprise_key_reads_nothing_of_another_enterprise(
    app, client, pool, uid, victim: Victim, credential: str
):
    caller_site = await staffed_site(pool, f"caller{uid}")
    await open_alert(pool, violation(caller_site))  # the caller has data of its own
    if credential == "key":
        caller = bearer(await make_key(pool, "enterprise", caller_site.enterprise_id))
    else:
        caller = bearer(await _account_session(client, pool, caller_site.enterprise_id, f"caller{uid}"))
    filters = {k: v for k, v in victim.ids.items() if k in ("enterprise_id", "site_id", "alert_id")}
    checked = []
    # Signing out last: it ends an account's session, which would leave the rest of the walk at 401.
    signs_out = ("DELETE", "/api/v1/auth/session")
    for method, template in sorted(_routes(app), key=lambda route: route == signs_out):
        url = _fill(template, victim.ids)
        if template in _STREAMS:
            checked.append(template)  # over real HTTP: test_the_live_stream_shows_…
            continue
        kwargs: dict[str, Any] = {"headers": caller, "params": filters}
        if method in ("POST", "PUT", "PATCH"):
            kwargs["json"] = {
                "reason": "probe", "note": "probe", "name": "probe", "away": True, "outcome": "compliant",
                "staff_id": victim.ids["staff_id"], "description": "probe", "role": "enterprise",
                "enterprise_id": victim.ids["enterprise_id"],
            }  # fmt: skip
        r = await client.request(method, url, **kwargs)
        assert r.status_code < 500, f"{method} {template}: {r.status_code} {r.text[:200]}"
        if method != "GET" and (method, template) not in _SELF:
            assert r.status_code in _REFUSED, f"{method} {template} let an enterprise act on another's data"
        elif r.status_code not in _REFUSED:
            assert victim.marker not in r.text, f"GET {template} showed the victim's data: {r.text[:300]}"
        checked.append(template)
    # Sanity: the walk covered the routes that hold tenant data.
    for must in (
        "/api/v1/alerts",
        "/api/v1/alerts/{alert_id}",
        "/api/v1/alerts/{alert_id}/evidence/{sha256}",
    ):
        assert must in checked


async def test_the_victim_itself_can_read_what_the_caller_could_not(client, pool, victim: Victim):
    """The walk above must be able to fail: the same probes with the victim's own key find its data."""
    own = bearer(await make_key(pool, "enterprise", victim.ids["enterprise_id"]))
    r = await client.get(_fill("/api/v1/alerts/{alert_id}/evidence/{sha256}", victim.ids), headers=own)
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    r = await client.get("/api/v1/enterprise/alerts", headers=own)
    assert r.status_code == 200 and victim.marker in r.text


@pytest.fixture
async def stream_url(api_settings, victim: Victim) -> AsyncIterator[str]:
    """The stream needs real HTTP (an in-process transport buffers the endless body): its own app
    on a free port, after the victim's alert change was published on `vigil.alerts.v1`."""
    from aiokafka import AIOKafkaProducer

    from api import create_app
    from vigil.events import AlertChange, encode
    from vigil.http import EmbeddedHttpServer
    from vigil.topics import ALERTS

    since = int(time.time() * 1000) - 1000
    producer = AIOKafkaProducer(bootstrap_servers=api_settings.kafka_bootstrap)
    await producer.start()
    try:
        change = AlertChange(
            alert_id=victim.ids["alert_id"], enterprise_id=victim.ids["enterprise_id"],
            site_id=victim.ids["site_id"], code="KITCHEN_SMOKING", status="closed", change="verified",
            severity="major", tier=2, at=since + 1000, summary=f"closed for {victim.marker}",
        )  # fmt: skip
        await producer.send_and_wait(ALERTS, encode(change), key=change.alert_id.encode())
    finally:
        await producer.stop()
    server = EmbeddedHttpServer(create_app(api_settings), host="127.0.0.1", port=0, label="tenancy API")
    await server.start(lambda coro, name: asyncio.create_task(coro, name=name))
    try:
        yield f"{server.url}/api/v1/stream?since={since}"
    finally:
        await server.shutdown()


async def read_stream(url: str, headers: dict[str, str], seconds: float = 3.0) -> str:
    chunks: list[str] = []

    async def read() -> None:
        async with httpx.AsyncClient(timeout=10) as http, http.stream("GET", url, headers=headers) as r:
            chunks.append(f"status {r.status_code}\n")
            async for text in r.aiter_text():
                chunks.append(text)

    with contextlib.suppress(TimeoutError):  # a stream does not end by itself: read for a while
        await asyncio.wait_for(read(), timeout=seconds)
    return "".join(chunks)


async def test_the_live_stream_shows_an_enterprise_only_its_own_changes(
    pool, uid, victim: Victim, stream_url
):
    caller_site = await staffed_site(pool, f"caller{uid}")
    caller = bearer(await make_key(pool, "enterprise", caller_site.enterprise_id))
    own = bearer(await make_key(pool, "enterprise", victim.ids["enterprise_id"]))
    seen_by_caller = await read_stream(stream_url, caller)
    assert seen_by_caller.startswith("status 200") and victim.marker not in seen_by_caller
    # The probe can fail: the victim's own key, same stream, same position, sees the change.
    assert victim.marker in await read_stream(stream_url, own)
