"""API fixtures: the real app over the session's embedded PostgreSQL, and alerts seeded by SQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool
from pydantic import SecretStr

from api import create_app
from vigil.http import EmbeddedHttpServer
from vigil.settings import Settings

TOKEN = "test-operator-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    # A copy: the session settings are shared, and require_secret() would write into them.
    return settings.model_copy(update={"api_token": SecretStr(TOKEN)})


@pytest.fixture
async def app(api_settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(api_settings)
    # ASGITransport does not run the lifespan; enter it here so the pool is open.
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test", headers=AUTH) as c:
        yield c


@dataclass
class Seeder:
    """Inserts an enterprise, a site and alerts straight into the tables, ids suffixed with uid."""

    pool: AsyncConnectionPool[Any]
    uid: str

    @property
    def enterprise(self) -> str:
        return f"ent-{self.uid}"

    @property
    def site(self) -> str:
        return f"site-{self.uid}"

    async def registry(self, enterprise: str | None = None, site: str | None = None) -> None:
        enterprise, site = enterprise or self.enterprise, site or self.site
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO enterprises (enterprise_id, name) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                (enterprise, f"Restaurant {enterprise}"),
            )
            await conn.execute(
                "INSERT INTO sites (site_id, enterprise_id, name) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                (site, enterprise, f"Kitchen {site}"),
            )

    async def alert(
        self,
        n: int,
        *,
        created_at: datetime,
        code: str = "KITCHEN_NO_MASK",
        status: str = "open",
        tier: int = 2,
        enterprise: str | None = None,
        site: str | None = None,
    ) -> str:
        alert_id = f"a-{self.uid}-{n:02d}"
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO alerts (alert_id, code, enterprise_id, site_id, source_kind, source_id,"
                " status, severity, tier, summary, evidence, detector, window_start, first_seen,"
                " last_seen, deadline, created_at, updated_at)"
                " VALUES (%s, %s, %s, %s, 'camera', %s, %s, 'minor', %s, %s, %s, 'vision:test',"
                " %s, %s, %s, %s, %s, %s)",
                (
                    alert_id,
                    code,
                    enterprise or self.enterprise,
                    site or self.site,
                    f"cam-{self.uid}-{n}",  # one open alert per source and code
                    status,
                    tier,
                    f"alert {n}",
                    Jsonb({"frame": f"frames/{n}.jpg", "score": 0.9}),
                    created_at - timedelta(minutes=1),
                    created_at,
                    created_at,
                    created_at + timedelta(hours=24),
                    created_at,
                    created_at,
                ),
            )
        return alert_id

    async def audit(self, alert_id: str, actor: str, action: str, frm: str | None, to: str | None) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO alert_audit (alert_id, actor, action, from_status, to_status, reason)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                (alert_id, actor, action, frm, to, f"{action} by {actor}"),
            )


@pytest.fixture
async def seed(pool: AsyncConnectionPool[Any], uid: str) -> Seeder:
    seeder = Seeder(pool, uid)
    await seeder.registry()
    return seeder


async def make_key(pool: AsyncConnectionPool[Any], role: str, enterprise_id: str | None = None) -> str:
    """A real API key in the real table, as `vigil keys create` would make it."""
    from vigil.keys import create_key

    async with pool.connection() as conn, conn.transaction():
        _, key = await create_key(
            conn, name=f"test {role}", role=role, enterprise_id=enterprise_id, created_by="test"
        )
    return key


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
async def supervisor_key(pool: AsyncConnectionPool[Any]) -> str:
    return await make_key(pool, "supervisor")


@pytest.fixture
async def operator_key(pool: AsyncConnectionPool[Any]) -> str:
    return await make_key(pool, "operator")


@pytest.fixture
async def api_url(api_settings: Settings) -> AsyncIterator[str]:
    """The API on real HTTP, for the endless MJPEG bodies (an in-process transport buffers them)."""
    server = EmbeddedHttpServer(create_app(api_settings), host="127.0.0.1", port=0, label="test API")
    await server.start(lambda coro, name: asyncio.create_task(coro, name=name))
    try:
        yield server.url
    finally:
        await server.shutdown()
