"""Session fixtures: the real embedded Kafka (Tansu), MQTT broker and PostgreSQL, on free ports."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from shell.infra import Infrastructure
from tests.lifecycle import Site, staffed_site
from vigil.db import make_pool, migrate
from vigil.kafka import ensure_topics
from vigil.settings import Settings

# `new_database`: for tests that need an empty database of their own; `thingsboard_sdk_python`: the
# ThingsBoard device SDK's own venv.
pytest_plugins = ["tests.databases", "tests.thingsboard_sdk"]


@pytest.fixture(scope="session")
def settings() -> Iterator[Settings]:
    """Real brokers and database for the whole run; URLs in the environment win, as in production."""
    infra = Infrastructure(Settings(mode="demo"))
    configured = infra.start()
    try:
        assert configured.database_url and configured.kafka_bootstrap
        asyncio.run(migrate(configured.database_url))
        asyncio.run(ensure_topics(configured.kafka_bootstrap))
        # The camera tests draw the simulator's cartoon kitchens, which only its colour-marker model
        # understands; tests of the trained kitchen model ask for it by name.
        yield configured.model_copy(update={"vision_model": "sim-markers"})
    finally:
        infra.stop()


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[object]:
    assert settings.database_url
    p = make_pool(settings.database_url, max_size=4)
    await p.open(wait=True)
    try:
        yield p
    finally:
        await p.close()


@pytest.fixture
async def retire_cameras(pool: Any, uid: str) -> AsyncIterator[None]:
    """The test's cameras (ids ending in its uid) disabled afterwards, so later camera ingests do
    not pull its dead streams. Camera tests ask for it with `pytest.mark.usefixtures`."""
    yield
    async with pool.connection() as conn:
        await conn.execute("UPDATE cameras SET enabled = false WHERE camera_id LIKE %s", (f"%{uid}",))


@pytest.fixture
def uid() -> str:
    """A short unique suffix, so tests sharing the brokers and database never see each other's data."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
async def site(pool: object, uid: str) -> Site:
    """An enterprise with one site (district Xuhui) whose A, B and C handlers are all present."""
    return await staffed_site(pool, uid)
