"""The MQTT → Kafka bridge on the real embedded brokers and database: good readings reach
`vigil.telemetry.v1`, bad ones reach `vigil.deadletter.v1` with a reason, and neither stops the other."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import orjson
import paho.mqtt.client as paho
import pytest

from ingest.bridge import MqttKafkaBridge
from shell.faults.proxy import TcpProxy
from shell.infra import free_port, start_kafka
from tests.helpers import KafkaTail, publish
from vigil.errors import InfrastructureUnavailable
from vigil.kafka import ensure_topics, now_ms
from vigil.registry import register_device
from vigil.settings import Settings
from vigil.topics import DEADLETTER, TELEMETRY

pytestmark = pytest.mark.integration

WAIT_S = 20.0
# Long enough for the bridge's first sends to fail and back off (its retry starts at 0.2 s).
OUTAGE_S = 3.0


@dataclasses.dataclass(frozen=True)
class Registered:
    enterprise: str
    site: str
    device: str

    def topic(self, kind: str = "telemetry") -> str:
        return f"vigil/v1/{self.enterprise}/{self.device}/{kind}"


@pytest.fixture
async def registered(pool: Any, uid: str) -> Registered:
    dev = Registered(f"ent-{uid}", f"site-{uid}", f"freezer-{uid}")
    await register_device(
        pool, enterprise_id=dev.enterprise, site_id=dev.site, device_id=dev.device, profile="freezer"
    )
    return dev


@pytest.fixture
async def bridge(settings: Settings, registered: Registered, uid: str) -> AsyncIterator[MqttKafkaBridge]:
    # A client id per test: each test gets its own persistent MQTT session.
    async with MqttKafkaBridge(settings, client_id=f"vigil-ingest-test-{uid}") as running:
        yield running


@pytest.fixture
async def telemetry(settings: Settings) -> AsyncIterator[KafkaTail]:
    assert settings.kafka_bootstrap
    async with KafkaTail(settings.kafka_bootstrap, TELEMETRY) as tail:
        yield tail


@pytest.fixture
async def deadletters(settings: Settings) -> AsyncIterator[KafkaTail]:
    assert settings.kafka_bootstrap
    async with KafkaTail(settings.kafka_bootstrap, DEADLETTER) as tail:
        yield tail


async def send(settings: Settings, topic: str, payload: Any) -> None:
    raw = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    assert settings.mqtt_url
    await asyncio.to_thread(publish, settings.mqtt_url, topic, raw)


async def test_our_form_and_thingsboard_form_reach_kafka(
    settings: Settings, registered: Registered, bridge: MqttKafkaBridge, telemetry: KafkaTail
) -> None:
    ts = now_ms() - 5_000
    await send(settings, registered.topic(), {"ts": ts, "metrics": {"temperature": -18.5}})
    await send(settings, registered.topic(), {"ts": ts + 1, "values": {"temperature": -17.0, "door": 1}})
    await send(settings, registered.topic(), {"humidity": 40})
    await send(
        settings, registered.topic(), [{"ts": ts + 2, "values": {"t": 1}}, {"ts": ts + 3, "values": {"t": 2}}]
    )

    records = await telemetry.wait_for(
        lambda r: r.get("device_id") == registered.device, count=5, timeout=WAIT_S
    )
    by_ts = {r["ts"]: r for r in records}
    first, second = by_ts[ts], by_ts[ts + 1]
    [bare] = [r for r in records if "humidity" in r["metrics"]]
    listed = sorted((r for r in records if "t" in r["metrics"]), key=lambda r: r["ts"])
    assert first == {
        "enterprise_id": registered.enterprise,
        "device_id": registered.device,
        "site_id": registered.site,
        "profile": "freezer",
        "ts": ts,
        "metrics": {"temperature": -18.5},
        "received_at": first["received_at"],
        "type": "telemetry",
        "v": 1,
    }
    assert first["received_at"] >= ts
    assert second["ts"] == ts + 1 and second["metrics"] == {"temperature": -17.0, "door": 1.0}
    assert bare["metrics"] == {"humidity": 40.0} and bare["ts"] == bare["received_at"]
    assert [(r["ts"], r["metrics"]) for r in listed] == [(ts + 2, {"t": 1.0}), (ts + 3, {"t": 2.0})]
    stats = bridge.stats.snapshot()
    assert stats.forwarded >= 4 and stats.records >= 5 and stats.received >= 4


async def test_bad_messages_are_dead_lettered_and_good_traffic_continues(
    settings: Settings,
    registered: Registered,
    bridge: MqttKafkaBridge,
    telemetry: KafkaTail,
    deadletters: KafkaTail,
    uid: str,
) -> None:
    good = {"metrics": {"temperature": -20.0}}
    bad = {
        "bad_json": (registered.topic(), b'{"metrics": {"temperature": '),
        "unknown_device": (f"vigil/v1/{registered.enterprise}/ghost-{uid}/telemetry", orjson.dumps(good)),
        "enterprise_mismatch": (f"vigil/v1/other-{uid}/{registered.device}/telemetry", orjson.dumps(good)),
        "oversized": (
            registered.topic(),
            orjson.dumps({"metrics": {"t": 1}, "pad": "x" * settings.ingest_max_payload_bytes}),
        ),
        "bad_metric": (registered.topic(), orjson.dumps({"metrics": {"temperature": "cold"}})),
    }
    for topic, payload in bad.values():
        await send(settings, topic, payload)
    await send(settings, registered.topic(), {"metrics": {"temperature": -19.0}})

    letters = await deadletters.wait_for(lambda r: uid in r["source"], count=len(bad), timeout=WAIT_S)
    by_reason = {letter["reason"]: letter for letter in letters}
    assert set(by_reason) == set(bad)
    for reason_code, (topic, payload) in bad.items():
        letter = by_reason[reason_code]
        assert letter["source"] == topic and letter["service"] == "ingest" and letter["detail"]
        assert letter["payload"] == payload[:4096].decode()
    [after] = await telemetry.wait_for(
        lambda r: r.get("device_id") == registered.device and r["metrics"] == {"temperature": -19.0},
        timeout=WAIT_S,
    )
    assert after["enterprise_id"] == registered.enterprise
    assert all(bridge.stats.dead_lettered.get(reason_code) == 1 for reason_code in bad)
    assert bridge.failed is not None and not bridge.failed.done()


async def test_last_will_offline_becomes_status(
    settings: Settings, registered: Registered, bridge: MqttKafkaBridge, telemetry: KafkaTail
) -> None:
    await send(settings, registered.topic("status"), b"offline")
    await send(settings, registered.topic("event"), {"event": "door_open", "data": {"door": 2}})
    [status] = await telemetry.wait_for(
        lambda r: r.get("device_id") == registered.device and r["type"] == "status", timeout=WAIT_S
    )
    assert status["online"] is False and status["site_id"] == registered.site
    [event] = await telemetry.wait_for(
        lambda r: r.get("device_id") == registered.device and r["type"] == "event", timeout=WAIT_S
    )
    assert event["event"] == "door_open" and event["data"] == {"door": 2}


async def test_message_published_while_ingest_is_down_arrives_after_restart(
    settings: Settings, registered: Registered, telemetry: KafkaTail, uid: str
) -> None:
    client_id = f"vigil-ingest-restart-{uid}"
    async with MqttKafkaBridge(settings, client_id=client_id):
        pass  # the persistent session now holds the subscription
    await send(settings, registered.topic(), {"metrics": {"while_down": 1}})
    async with MqttKafkaBridge(settings, client_id=client_id) as again:
        [record] = await telemetry.wait_for(
            lambda r: r.get("device_id") == registered.device and "while_down" in r["metrics"], timeout=WAIT_S
        )
        assert record["metrics"] == {"while_down": 1.0}
        assert again.stats.forwarded >= 1


async def test_a_full_queue_holds_the_broker_back_without_losing_anything(
    settings: Settings, registered: Registered, telemetry: KafkaTail, uid: str
) -> None:
    small = settings.model_copy(update={"ingest_queue_size": 2})
    count = 300
    async with MqttKafkaBridge(small, client_id=f"vigil-ingest-small-{uid}") as running:
        await asyncio.to_thread(_publish_many, settings, registered.topic(), count)
        records = await telemetry.wait_for(
            lambda r: r.get("device_id") == registered.device, count=count, timeout=WAIT_S
        )
        assert sorted(r["metrics"]["seq"] for r in records) == [float(i) for i in range(count)]
        assert running.stats.forwarded == count and not running.stats.dead_lettered


def _publish_many(settings: Settings, topic: str, count: int) -> None:
    """One device connection publishing a burst, faster than a queue of 2 drains."""
    assert settings.mqtt_url
    url = urlsplit(settings.mqtt_url)
    client = paho.Client(paho.CallbackAPIVersion.VERSION2)
    client.connect(url.hostname or "127.0.0.1", url.port or 1883)
    client.loop_start()
    try:
        infos = [client.publish(topic, orjson.dumps({"metrics": {"seq": i}}), qos=1) for i in range(count)]
        for info in infos:
            info.wait_for_publish(WAIT_S)
    finally:
        client.disconnect()
        client.loop_stop()


def test_stats_snapshot_is_frozen(settings: Settings) -> None:
    snapshot = MqttKafkaBridge(settings, client_id="unused").stats.snapshot()
    assert snapshot.received == 0 and dict(snapshot.dead_lettered) == {}
    with pytest.raises(dataclasses.FrozenInstanceError):
        snapshot.received = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        snapshot.dead_lettered["x"] = 1  # type: ignore[index]


def test_shared_subscription_setting(settings: Settings) -> None:
    shared = settings.model_copy(update={"ingest_shared_group": "ingest"})
    assert MqttKafkaBridge(shared, client_id="unused").subscription == "$share/ingest/vigil/v1/+/+/+"
    assert MqttKafkaBridge(settings, client_id="unused").subscription == "vigil/v1/+/+/+"


async def test_a_message_not_yet_on_kafka_is_redelivered_after_a_crash(
    settings: Settings, registered: Registered, proxied_kafka: tuple[str, TcpProxy], uid: str
) -> None:
    """Ingest stops while Kafka is cut and a reading is still on its way: the reading was never
    acknowledged to MQTT, so the broker redelivers it to the next ingest on the same session, and
    it arrives exactly once. (The stop waits out the producer's request timeout, shortened here to
    5 s: a stop bounded sooner let the abandoned batch reach Kafka after the cut and doubled it.)"""
    bootstrap, proxy = proxied_kafka
    behind_proxy = settings.model_copy(
        update={"kafka_bootstrap": bootstrap, "kafka_request_timeout_ms": 5_000}
    )
    client_id = f"vigil-ingest-crash-{uid}"
    async with KafkaTail(bootstrap, TELEMETRY) as telemetry:
        stuck = MqttKafkaBridge(behind_proxy, client_id=client_id)
        async with stuck:
            proxy.cut()
            await send(settings, registered.topic(), {"metrics": {"unacked": 1}})
            deadline = asyncio.get_running_loop().time() + WAIT_S
            while stuck.stats.received < 1 and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)  # time enough for a premature PUBACK to reach the broker
            assert stuck.stats.received == 1 and stuck.stats.forwarded == 0
        proxy.restore()
        assert not [r for r in telemetry.records if r.get("device_id") == registered.device]

        async with MqttKafkaBridge(behind_proxy, client_id=client_id):  # same session: resent
            [record] = await telemetry.wait_for(
                lambda r: r.get("device_id") == registered.device and "unacked" in r["metrics"],
                timeout=WAIT_S,
            )
            assert record["metrics"] == {"unacked": 1.0}


async def test_reconnects_after_the_broker_drops_the_connection(
    settings: Settings, registered: Registered, telemetry: KafkaTail, uid: str
) -> None:
    client_id = f"vigil-ingest-drop-{uid}"
    async with MqttKafkaBridge(settings, client_id=client_id) as running:
        # Another connection with the same client id makes the broker drop the bridge's connection.
        await asyncio.to_thread(_take_over_session, settings, client_id)
        await send(settings, registered.topic(), {"metrics": {"after_drop": 1}})
        [record] = await telemetry.wait_for(
            lambda r: r.get("device_id") == registered.device and "after_drop" in r["metrics"], timeout=WAIT_S
        )
        assert record["metrics"] == {"after_drop": 1.0} and running.stats.forwarded >= 1
        assert running.failed is not None and not running.failed.done()


def _take_over_session(settings: Settings, client_id: str) -> None:
    assert settings.mqtt_url
    url = urlsplit(settings.mqtt_url)
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
    client.connect(url.hostname or "127.0.0.1", url.port or 1883)
    client.loop_start()
    time.sleep(0.3)
    client.disconnect()
    client.loop_stop()


@pytest.fixture
async def proxied_kafka(tmp_path: Any) -> AsyncIterator[tuple[str, TcpProxy]]:
    """A broker of its own that every client reaches through a cuttable proxy: it advertises the
    proxy's address, so clients reconnect through the proxy after bootstrap too."""
    kafka_port = free_port()
    proxy = TcpProxy(("127.0.0.1", kafka_port))
    proxy_port = await proxy.start()
    broker, bootstrap = await asyncio.to_thread(start_kafka, tmp_path, kafka_port, advertised_port=proxy_port)
    try:
        await ensure_topics(bootstrap)
        yield bootstrap, proxy
    finally:
        await proxy.stop()
        await asyncio.to_thread(broker.stop)


async def test_kafka_outage_is_retried_not_dropped(
    settings: Settings, registered: Registered, proxied_kafka: tuple[str, TcpProxy], uid: str
) -> None:
    """A real outage: the connection to Kafka is cut while a reading is on its way and restored
    later; the reading waits (unacknowledged to MQTT) and arrives once Kafka is back."""
    bootstrap, proxy = proxied_kafka
    behind_proxy = settings.model_copy(update={"kafka_bootstrap": bootstrap})
    async with (
        KafkaTail(bootstrap, TELEMETRY) as telemetry,
        MqttKafkaBridge(behind_proxy, client_id=f"vigil-ingest-outage-{uid}") as bridge,
    ):
        proxy.cut()
        await send(settings, registered.topic(), {"metrics": {"retried": 1}})
        await asyncio.sleep(OUTAGE_S)
        assert bridge.stats.received == 1 and bridge.stats.forwarded == 0, "nothing gets through a cut"
        proxy.restore()
        [record] = await telemetry.wait_for(
            lambda r: r.get("device_id") == registered.device and "retried" in r["metrics"], timeout=WAIT_S
        )
        assert record["metrics"] == {"retried": 1.0}
        assert bridge.stats.forwarded == 1 and not bridge.stats.dead_lettered
        assert bridge.failed is not None and not bridge.failed.done()


async def test_start_fails_cleanly_when_the_mqtt_broker_is_unreachable(settings: Settings, uid: str) -> None:
    nowhere = settings.model_copy(update={"mqtt_url": f"mqtt://127.0.0.1:{free_port()}"})
    bridge = MqttKafkaBridge(nowhere, client_id=f"vigil-ingest-nowhere-{uid}")
    with pytest.raises(InfrastructureUnavailable):
        await asyncio.wait_for(bridge.start(), WAIT_S)
    assert not bridge._tasks and bridge._pool.closed  # worker cancelled, database pool closed
