"""Push credentials per edge box: issued by the API or the CLI for named cameras of one enterprise,
stored hashed, rotated and revoked; a push to a camera the token does not cover is a 403 and a
dead letter, and outside demo mode the old shared token opens nothing. Real camera ingest (its
HTTP port), real Kafka for the dead letters, the real API over the real database, and the real
`vigil` CLI as a subprocess."""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from api import create_app
from ingest.camera.push_auth import CACHE_TTL_S
from ingest.camera.service import CameraIngest
from tests.api.conftest import bearer, make_key
from tests.helpers import KafkaTail
from tests.ingest.camera.test_push_hypothesis import jpeg
from vigil.cameras import register_camera
from vigil.settings import Settings
from vigil.topics import DEADLETTER

SHARED = secrets.token_urlsafe(24)


def vigil_cli(settings: Settings, *args: str) -> str:
    """`vigil <args>` as the bureau runs it; its output."""
    assert settings.database_url
    env = os.environ | {"VIGIL_DATABASE_URL": settings.database_url}
    done = subprocess.run(
        [sys.executable, "-m", "shell.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
async def edge(settings: Settings, pool: Any, uid: str) -> AsyncIterator[dict[str, Any]]:
    """Two enterprises with a push camera each, camera ingest in production mode (with the old
    shared token still set: it must be ignored), and the API with an operator key."""
    for ent in ("a", "b"):
        await register_camera(
            pool, enterprise_id=f"ent-{ent}-{uid}", site_id=f"site-{ent}-{uid}", camera_id=f"cam-{ent}-{uid}",
            source="push",
        )  # fmt: skip
    s = settings.model_copy(
        update={"mode": "production", "ingest_http_port": 0, "camera_push_token": SecretStr(SHARED)}
    )
    api_settings = settings.model_copy(update={"api_token": SecretStr(secrets.token_urlsafe(24))})
    app = create_app(api_settings)
    async with (
        KafkaTail(settings.kafka_bootstrap or "", DEADLETTER) as dead,
        CameraIngest(s) as ingest,
        httpx.AsyncClient(base_url=ingest.http_url or "") as push,
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as api,
    ):
        yield {"push": push, "api": api, "dead": dead, "operator": bearer(await make_key(pool, "operator"))}


async def post_frame(push: httpx.AsyncClient, camera: str, token: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "image/jpeg"}
    return await push.post(f"/v1/cameras/{camera}/frames", content=jpeg(seed=3), headers=headers)


async def test_a_token_pushes_only_its_own_cameras(edge: dict[str, Any], pool: Any, uid: str) -> None:
    api, push, own, other = edge["api"], edge["push"], f"cam-a-{uid}", f"cam-b-{uid}"
    r = await api.post(
        "/api/v1/camera-tokens",
        json={"enterprise_id": f"ent-a-{uid}", "name": "kitchen NVR", "cameras": [own]},
        headers=edge["operator"],
    )
    assert r.status_code == 201, r.text
    token_id, token = r.json()["token_id"], r.json()["token"]
    assert (await post_frame(push, own, token)).status_code == 202
    refused = await post_frame(push, other, token)  # another enterprise's camera
    assert refused.status_code == 403 and refused.json()["detail"]["reason"] == "camera_not_covered"
    [letter] = await edge["dead"].wait_for(lambda d: d["source"] == f"push/{other}")
    assert letter["reason"] == "camera_not_covered" and token_id in letter["detail"]
    # Outside demo mode the old shared token opens nothing, and a made-up one neither.
    assert (await post_frame(push, own, SHARED)).status_code == 401
    assert (await post_frame(push, own, f"vcp_{token_id}_" + "A" * 43)).status_code == 401
    # Stored hashed: the row holds the SHA-256 of the token, never the token.
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT * FROM camera_push_tokens WHERE token_id = %s", (token_id,))
        row = await cur.fetchone()
    assert row is not None and hashlib.sha256(token.encode()).digest() in row
    assert all(token not in str(v) for v in row)
    listed = (
        await api.get(
            "/api/v1/camera-tokens", params={"enterprise_id": f"ent-a-{uid}"}, headers=edge["operator"]
        )
    ).json()
    assert [(t["token_id"], t["cameras"]) for t in listed] == [(token_id, [own])] and token not in str(listed)


async def test_tokens_are_refused_for_cameras_of_another_enterprise(edge: dict[str, Any], uid: str) -> None:
    r = await edge["api"].post(
        "/api/v1/camera-tokens",
        json={"enterprise_id": f"ent-a-{uid}", "name": "box", "cameras": [f"cam-a-{uid}", f"cam-b-{uid}"]},
        headers=edge["operator"],
    )
    assert r.status_code == 404 and f"cam-b-{uid}" in r.json()["detail"]


async def test_rotate_by_cli_and_revoke_by_api(
    edge: dict[str, Any], settings: Settings, pool: Any, uid: str
) -> None:
    push, own = edge["push"], f"cam-a-{uid}"
    out = vigil_cli(
        settings,
        "cameras",
        "token",
        "issue",
        "--enterprise",
        f"ent-a-{uid}",
        "--name",
        "nvr",
        "--camera",
        own,
    )
    token = next(line for line in out.splitlines() if line.startswith("vcp_"))
    token_id = token.split("_")[1]
    assert (await post_frame(push, own, token)).status_code == 202
    out = vigil_cli(settings, "cameras", "token", "rotate", token_id)
    rotated = next(line for line in out.splitlines() if line.startswith("vcp_"))
    assert rotated != token and rotated.split("_")[1] == token_id
    await asyncio.sleep(CACHE_TTL_S + 0.5)  # the bound on how long an answer is cached
    assert (await post_frame(push, own, token)).status_code == 401
    assert (await post_frame(push, own, rotated)).status_code == 202
    gone = await edge["api"].delete(f"/api/v1/camera-tokens/{token_id}", headers=edge["operator"])
    assert gone.status_code == 204
    await asyncio.sleep(CACHE_TTL_S + 0.5)
    assert (await post_frame(push, own, rotated)).status_code == 401
    # Only the monitoring centre manages them.
    enterprise = bearer(await make_key(pool, "enterprise", f"ent-a-{uid}"))
    assert (await edge["api"].get("/api/v1/camera-tokens", headers=enterprise)).status_code == 403
