"""A running Vigil for the browser tests: the API on a free port (uvicorn), the alerts service and
the notifier, on the session's embedded Kafka, MQTT and PostgreSQL; and what the tests feed it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import pytest
from aiokafka import AIOKafkaProducer
from pydantic import SecretStr

from alerts.notifier import Notifier
from alerts.service import AlertService
from api.server import ApiService
from shell.infra import free_port
from tests.api.conftest import make_key
from tests.lifecycle import Site, staffed_site
from vigil.events import Violation, encode
from vigil.evidence import EvidenceStore
from vigil.settings import Settings
from vigil.topics import VIOLATIONS


def jpeg(colour: tuple[int, int, int], text: str) -> bytes:
    image = np.zeros((240, 320, 3), np.uint8)
    image[:] = colour
    cv2.putText(image, text, (20, 130), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (255, 255, 255), 2)
    ok, encoded = cv2.imencode(".jpg", image)
    assert ok
    return bytes(encoded.tobytes())


@dataclass
class Running:
    api: ApiService
    settings: Settings
    site: Site
    operator_key: str
    enterprise_key: str
    evidence: EvidenceStore

    @property
    def url(self) -> str:
        return self.api.url

    async def restart_api(self, while_down: Callable[[], Awaitable[None]]) -> None:
        """Stop the API (cutting every open stream), run `while_down`, serve again on the same port."""
        await self.api.stop()
        await while_down()
        self.api = ApiService(self.settings)
        await self.api.start()


@pytest.fixture(scope="module")
def pipeline(settings: Settings) -> Iterator[None]:
    """The alerts service and the notifier, started once for the module in a thread (and event
    loop) of their own: they share only Kafka and PostgreSQL with the API, as in production, and
    joining the alerts consumer group costs seconds that need not be paid per test."""
    ready = threading.Event()
    stop = threading.Event()
    failure: list[BaseException] = []

    async def serve() -> None:
        try:
            async with AlertService(settings), Notifier(settings):
                ready.set()
                while not stop.is_set():
                    await asyncio.sleep(0.05)
        except BaseException as exc:
            failure.append(exc)
            ready.set()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), name="alerts+notifier", daemon=True)
    thread.start()
    assert ready.wait(60), "the alerts service and notifier did not start"
    assert not failure, failure
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=30)


@pytest.fixture
async def vigil(
    settings: Settings, pipeline: None, pool: Any, uid: str, tmp_path: Any
) -> AsyncIterator[Running]:
    """Vigil as it runs in production: the API on a free port, the alerts service and the notifier."""
    configured = settings.model_copy(
        update={
            "api_host": "127.0.0.1",
            "api_port": free_port(),
            "api_token": SecretStr(f"browser-test-token-{uid}-0123456789"),
            "evidence_dir": str(tmp_path / "evidence"),
        }
    )
    site = await staffed_site(pool, uid)
    operator_key = await make_key(pool, "operator")
    enterprise_key = await make_key(pool, "enterprise", site.enterprise_id)
    running = Running(
        ApiService(configured), configured, site, operator_key, enterprise_key,
        EvidenceStore(tmp_path / "evidence"),
    )  # fmt: skip
    await running.api.start()
    try:
        yield running
    finally:
        await running.api.stop()


async def publish(settings: Settings, *violations: Violation) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        for v in violations:
            await producer.send_and_wait(VIOLATIONS, encode(v), key=v.source_id.encode())
    finally:
        await producer.stop()
