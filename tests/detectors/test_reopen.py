"""Never silent about an ongoing violation (issue 16.5), the detector's half: a device alert closed
(here dismissed) while the freezer is still warm is raised again at once as a new alert, and that
new alert is the one the freezer's recovery clears. Real Kafka, real PostgreSQL, the real alert
store and lifecycle; the rule engine's part is pure logic and is also checked alone."""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaProducer

from alerts import lifecycle
from alerts.policy import DEFAULT_POLICY
from alerts.store import apply_violation
from detectors.rules import RuleEngine
from detectors.rules.state_reopen import ClosedAlert, reopen
from detectors.telemetry import TelemetryDetector
from tests.helpers import KafkaTail
from vigil.events import Telemetry, Violation, decode_violation, encode, violation_id
from vigil.kafka import now_ms
from vigil.registry import register_device
from vigil.topics import TELEMETRY, VIOLATIONS

CODE = "COLD_CHAIN_FREEZER_WARM"


def reading(uid: str, ts: int, temp: float) -> Telemetry:
    return Telemetry(f"ent-{uid}", f"freezer-{uid}", f"site-{uid}", "freezer", ts, {"temperature": temp}, ts)


def warm_engine(uid: str, start: int) -> tuple[RuleEngine, Violation]:
    engine = RuleEngine()
    out = [v for s in range(0, 1000, 60) for v in engine.feed(reading(uid, start + s * 1000, -5.0))]
    [raised] = out  # the default 900 s duration has passed
    return engine, raised


def test_an_episode_whose_alert_was_closed_is_raised_again_with_an_id_from_the_close():
    start = 1_763_000_000_000
    engine, raised = warm_engine("a", start)
    closed_at = start + 1_000_000
    alert = ClosedAlert("freezer-a", CODE, "dismissed", closed_at, frozenset({raised.violation_id}))
    [again] = reopen(engine, [alert])
    assert (again.state, again.code, again.window_start) == ("active", CODE, closed_at)
    assert again.violation_id == violation_id("device", "freezer-a", CODE, closed_at)
    assert again.evidence["previous_violation_id"] == raised.violation_id
    assert reopen(engine, [alert]) == []  # the old id is gone from the state: once only
    # A replay (a restart) rebuilds the same episode and raises the same id: the store absorbs it.
    replayed, _ = warm_engine("a", start)
    assert [v.violation_id for v in reopen(replayed, [alert])] == [again.violation_id]
    # The recovery clears the new episode, not the closed one.
    [cleared] = engine.feed(reading("a", start + 1_100_000, -20.0))
    assert (cleared.state, cleared.violation_id) == ("cleared", again.violation_id)
    # An alert of another episode, or of a device this engine does not hold, changes nothing.
    other = ClosedAlert("freezer-a", CODE, "closed", closed_at, frozenset({"someone-else"}))
    assert reopen(engine, [other, ClosedAlert("freezer-b", CODE, "closed", 1, frozenset())]) == []


async def store(pool: Any, v: dict[str, Any]) -> str | None:
    async with pool.connection() as conn, conn.transaction():
        return await apply_violation(conn, decode_violation(encode(v)), DEFAULT_POLICY)


async def test_a_dismissed_alert_of_a_freezer_still_warm_is_raised_again_as_a_new_alert(settings, pool, uid):
    device = f"freezer-{uid}"
    await register_device(
        pool, enterprise_id=f"ent-{uid}", site_id=f"site-{uid}", device_id=device, profile="freezer",
        attributes={"duration_s": 60},
    )  # fmt: skip
    start = now_ms() - 300_000
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        async with (
            KafkaTail(settings.kafka_bootstrap, VIOLATIONS) as violations,
            TelemetryDetector(settings) as detector,
        ):
            for s in range(0, 150, 30):
                await producer.send_and_wait(
                    TELEMETRY, encode(reading(uid, start + s * 1000, -5.0)), key=device.encode()
                )
            [raised] = await violations.wait_for(lambda r: r["source_id"] == device, timeout=45)
            assert await store(pool, raised) == "opened"
            async with pool.connection() as conn, conn.transaction():
                await lifecycle.dismiss(
                    conn,
                    raised["violation_id"],
                    actor="operator:t",
                    reason="looks like a defrost",
                    policy=DEFAULT_POLICY,
                )
            # The service polls every few seconds; called here so the test does not wait for it.
            assert await detector.reopen_closed() == 1
            [again] = await violations.wait_for(
                lambda r: r["source_id"] == device and r["violation_id"] != raised["violation_id"], timeout=45
            )
            assert await store(pool, again) == "opened"  # a new alert: the old one stays dismissed
            assert await detector.reopen_closed() == 0  # once only

            # The normal path: the freezer recovers, the clear reaches the new alert, and closing
            # that one raises nothing more.
            await producer.send_and_wait(
                TELEMETRY, encode(reading(uid, now_ms(), -20.0)), key=device.encode()
            )
            [cleared] = await violations.wait_for(
                lambda r: r["source_id"] == device and r["state"] == "cleared", timeout=45
            )
            assert cleared["violation_id"] == again["violation_id"]
            assert await store(pool, cleared) == "cleared"
            async with pool.connection() as conn, conn.transaction():
                await lifecycle.dismiss(
                    conn, again["violation_id"], actor="operator:t", reason="test", policy=DEFAULT_POLICY
                )
            assert await detector.reopen_closed() == 0
    finally:
        await producer.stop()
    async with pool.connection() as conn:
        rows = await (
            await conn.execute(
                "SELECT alert_id, status, cleared_at IS NOT NULL FROM alerts WHERE source_id = %s"
                " ORDER BY created_at",
                (device,),
            )
        ).fetchall()
    assert rows == [(raised["violation_id"], "dismissed", False), (again["violation_id"], "dismissed", True)]
    assert again["evidence"]["previous_violation_id"] == raised["violation_id"]
