"""A registered device that never sends anything becomes DEVICE_OFFLINE ("never connected") once its
heartbeat window has passed since registration, and the site status shows it offline (issue 16.4).
The pure part alone, then the real detector on the real Kafka and PostgreSQL, the real alert store
and the real API."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from pydantic import SecretStr

from alerts.store import apply_violation
from api import create_app
from detectors.rules import Rulebook, RuleEngine
from detectors.rules.state_never import NeverConnected, Registered
from detectors.telemetry import TelemetryDetector
from tests.helpers import KafkaTail
from vigil.events import Telemetry, decode_violation, encode, violation_id
from vigil.kafka import now_ms
from vigil.registry import register_device
from vigil.settings import Settings

R = 1_763_000_000_000
TOKEN = "test-operator-token-0123456789abcdef"


def freezer(device: str, at: int = R) -> Registered:
    return Registered(device, "ent", "site", "freezer", {"heartbeat_s": 20}, at)


def test_a_device_silent_since_registration_is_offline_once_its_heartbeat_has_passed():
    engine, never = RuleEngine(), NeverConnected(Rulebook(), since=R - 1)
    devices = [freezer("f-1"), freezer("f-old", at=R - 10), freezer("f-seen")]
    engine.feed(Telemetry("ent", "f-seen", "site", "freezer", R + 1, {"temperature": -20.0}, R + 1))
    assert never.check(engine, devices, R + 20_000) == []  # the window has not passed yet
    [offline] = never.check(engine, devices, R + 20_001)  # f-old predates what the detector knows
    assert (offline.source_id, offline.code, offline.state) == ("f-1", "DEVICE_OFFLINE", "active")
    assert offline.violation_id == violation_id("device", "f-1", "DEVICE_OFFLINE", R + 20_000)
    assert offline.evidence["reason"] == "never connected" and "never connected" in offline.summary
    assert never.check(engine, devices, R + 60_000) == []  # once
    [cleared] = never.connected("f-1", R + 70_000)  # its first message ends it
    assert (cleared.violation_id, cleared.state) == (offline.violation_id, "cleared")
    assert never.connected("f-1", R + 80_000) == []


async def test_the_detector_flags_a_never_connected_device_and_the_site_status_shows_it(
    settings: Settings, pool: Any, uid: str
):
    device, site = f"freezer-{uid}", f"site-{uid}"
    await register_device(
        pool, enterprise_id=f"ent-{uid}", site_id=site, device_id=device, profile="freezer",
        attributes={"heartbeat_s": 5},
    )  # fmt: skip
    async with (
        KafkaTail(settings.kafka_bootstrap, "vigil.violations.v1") as violations,
        TelemetryDetector(settings) as detector,
    ):
        # Once the detector holds its partitions and has read them (a clock a minute ahead, instead
        # of waiting for the poll): DEVICE_OFFLINE, never connected.
        for _ in range(150):
            if await detector.flag_never_connected(now=now_ms() + 60_000):
                break
            await asyncio.sleep(0.2)
        [raised] = await violations.wait_for(lambda r: r["source_id"] == device, timeout=45)
        assert (raised["code"], raised["state"]) == ("DEVICE_OFFLINE", "active")
        assert raised["evidence"]["reason"] == "never connected"
        async with pool.connection() as conn, conn.transaction():
            assert await apply_violation(conn, decode_violation(encode(raised))) == "opened"

        app = create_app(settings.model_copy(update={"api_token": SecretStr(TOKEN)}))
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url="http://test",
                headers={"Authorization": f"Bearer {TOKEN}"},
            ) as client,
        ):
            r = await client.get("/api/v1/sites/status", params={"enterprise_id": f"ent-{uid}"})
        assert r.status_code == 200, r.text
        [status] = r.json()["items"]
        assert status["devices"] == [{"device_id": device, "profile": "freezer", "online": False}]

        # Its first message clears it.
        first = Telemetry(f"ent-{uid}", device, site, "freezer", now_ms(), {"temperature": -20.0}, now_ms())
        await detector.producer.send_and_wait("vigil.telemetry.v1", encode(first), key=device.encode())
        [cleared] = await violations.wait_for(
            lambda r: r["source_id"] == device and r["state"] == "cleared", timeout=45
        )
    assert cleared["violation_id"] == raised["violation_id"]
