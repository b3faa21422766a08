"""The demo's broker has production's accounts and ACLs: nobody is anonymous, a device publishes only
its own topics, an enterprise reads only its own notices. Both embedded brokers: Mosquitto (the
production listener layout) where it is installed, and the pure-Python amqtt fallback."""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import paho.mqtt.client as paho
import pytest

from shell.infra import Infrastructure, MqttBroker, mosquitto_binary, start_mqtt_with_accounts
from shell.mqtt_acl import RegistryView
from vigil.settings import Settings

KEY = "demo-broker-test-key-0123456789abcdef"
VIEW = RegistryView((("entA", "devA"), ("entB", "devB")), ("entA", "entB"))


class Client:
    def __init__(
        self, port: int, username: str | None = None, password: str | None = None, cid: str = ""
    ) -> None:
        self.received: queue.Queue[tuple[str, bytes]] = queue.Queue()
        connected: queue.Queue[int] = queue.Queue()
        self.c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=cid, protocol=paho.MQTTv311)
        if username is not None:
            self.c.username_pw_set(username, password)
        self.c.on_connect = lambda _c, _u, _f, rc, _p: connected.put(rc.value)
        self.c.on_message = lambda _c, _u, msg: self.received.put((msg.topic, msg.payload))
        self.c.reconnect_delay_set(30, 60)
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        self.rc = connected.get(timeout=10)

    def subscribe(self, topic: str) -> None:
        done: queue.Queue[None] = queue.Queue()
        self.c.on_subscribe = lambda *_: done.put(None)
        self.c.subscribe(topic, qos=1)
        done.get(timeout=10)

    def publish(self, topic: str, payload: bytes) -> None:
        self.c.publish(topic, payload, qos=1).wait_for_publish(10)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def until(q: queue.Queue[tuple[str, bytes]], marker: bytes) -> list[tuple[str, bytes]]:
    got: list[tuple[str, bytes]] = []
    while not got or got[-1][1] != marker:
        got.append(q.get(timeout=10))
    return got


@pytest.fixture(params=["mosquitto", "amqtt"])
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MqttBroker]:
    if request.param == "mosquitto" and mosquitto_binary() is None:
        pytest.skip("mosquitto is not installed (the amqtt variant still runs)")
    broker = start_mqtt_with_accounts(tmp_path, KEY, prefer_mosquitto=request.param == "mosquitto")
    try:
        broker.refresh(VIEW)  # as the demo does once it has registered its site
        time.sleep(0.5)  # Mosquitto reloads on SIGHUP asynchronously
        yield broker
    finally:
        broker.proc.stop()


def service(broker: MqttBroker) -> Client:
    url = urlsplit(broker.url)
    assert url.port is not None
    client = Client(url.port, url.username, url.password, cid="vigil-ingest-test")
    assert client.rc == 0
    return client


def account(broker: MqttBroker, username: str) -> Client:
    client = Client(broker.public_port, username, broker.password(username), cid=username)
    assert client.rc == 0, f"{username} refused ({client.rc})"
    return client


def test_anonymous_and_wrong_credentials_are_refused(broker: MqttBroker) -> None:
    clients = [
        Client(broker.public_port),
        Client(broker.public_port, "device.devA", "guess"),
        Client(broker.public_port, "device.devB", broker.password("device.devA")),
        Client(broker.public_port, "device.unknown", broker.password("device.unknown")),
    ]
    try:
        assert all(c.rc != 0 for c in clients), [c.rc for c in clients]
    finally:
        for c in clients:
            c.close()


def test_a_device_cannot_publish_another_enterprises_topic_nor_read_notices(broker: MqttBroker) -> None:
    svc, dev_a, ent_a = service(broker), account(broker, "device.devA"), account(broker, "enterprise.entA")
    try:
        svc.subscribe("vigil/#")
        ent_a.subscribe("vigil/v1/+/notices")
        for topic in (
            "vigil/v1/entB/devB/telemetry",
            "vigil/v1/entB/devA/telemetry",
            "vigil/v1/entA/notices",
        ):
            dev_a.publish(topic, b"forged")
        dev_a.publish("vigil/v1/entA/devA/telemetry", b"own")
        assert until(svc.received, b"own") == [("vigil/v1/entA/devA/telemetry", b"own")]
        svc.publish("vigil/v1/entB/notices", b"for B")
        svc.publish("vigil/v1/entA/notices", b"for A")
        assert until(ent_a.received, b"for A") == [("vigil/v1/entA/notices", b"for A")]
    finally:
        for c in (svc, dev_a, ent_a):
            c.close()


def test_the_demo_infrastructure_runs_the_authenticated_broker(tmp_path: Path) -> None:
    infra = Infrastructure(
        Settings(mode="demo"), parts=frozenset({"mqtt"}), mqtt_accounts=True, workdir=tmp_path
    )
    s = infra.start()
    try:
        assert infra.mqtt_broker is not None and s.mqtt_url == infra.mqtt_broker.url
        assert urlsplit(s.mqtt_url).username == "vigil" and s.mqtt_credential_key is not None
        anonymous = Client(infra.mqtt_broker.public_port)
        anonymous.close()
        assert anonymous.rc != 0
        service(infra.mqtt_broker).close()
    finally:
        infra.stop()
