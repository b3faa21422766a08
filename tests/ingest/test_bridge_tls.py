"""Ingest over TLS: a real Mosquitto with production's listener layout (shell.mqtt_acl's
`render_mosquitto_conf`), both listeners TLS with a CA made in the test; ingest connects to the
internal one with `mqtts://...?cafile=`, a device publishes over TLS on the public one with its own
account, and the reading reaches `vigil.telemetry.v1`. Without the CA, or without TLS, nothing
connects."""

from __future__ import annotations

import asyncio
import os
import pwd
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import paho.mqtt.client as paho
import pytest

from ingest.bridge import MqttKafkaBridge
from shell.infra import free_port, mosquitto_binary, wait_for_port
from shell.mqtt_acl import Listener, RegistryView, derive_password, render_mosquitto_conf, write_auth_files
from tests.helpers import KafkaTail
from tests.shell.tls_files import OPENSSL, TlsFiles, make_tls_files
from vigil import mqtt
from vigil.errors import ConfigurationError, InfrastructureUnavailable
from vigil.kafka import now_ms
from vigil.registry import register_device
from vigil.settings import Settings
from vigil.topics import TELEMETRY

KEY = "tls-test-credential-key-0123456789"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(mosquitto_binary() is None, reason="needs Mosquitto (amqtt has no TLS listener here)"),
    pytest.mark.skipif(OPENSSL is None, reason="openssl is not installed (the test's CA)"),
]


@pytest.fixture
def tls_broker(tmp_path: Path, uid: str) -> Iterator[tuple[int, int, TlsFiles]]:
    tls = make_tls_files(tmp_path / "certs")
    public, internal = free_port(), free_port()
    auth = tmp_path / "auth"
    write_auth_files(auth, RegistryView(((f"ent-{uid}", f"freezer-{uid}"),), (f"ent-{uid}",)), KEY)
    files = {"certfile": str(tls.cert), "keyfile": str(tls.key)}
    conf = render_mosquitto_conf(
        Listener(public, "127.0.0.1", **files), Listener(internal, "127.0.0.1", **files), str(auth)
    )
    path = tmp_path / "mosquitto.conf"
    path.write_text(conf + f"persistence false\nuser {pwd.getpwuid(os.getuid()).pw_name}\n")
    binary = mosquitto_binary()
    assert binary
    with (tmp_path / "mosquitto.log").open("wb") as log:
        proc = subprocess.Popen([binary, "-c", str(path)], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(public, 10, proc)
        wait_for_port(internal, 10, proc)
        yield public, internal, tls
    finally:
        proc.terminate()
        proc.wait(10)


def service_url(port: int, ca: Path | None) -> str:
    url = f"mqtts://vigil:{derive_password(KEY, 'vigil')}@127.0.0.1:{port}"
    return url if ca is None else f"{url}?cafile={quote(str(ca))}"


def publish_over_tls(port: int, ca: Path, username: str, topic: str, payload: bytes) -> None:
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="ignored", protocol=paho.MQTTv311)
    client.tls_set(ca_certs=str(ca))
    client.username_pw_set(username, derive_password(KEY, username))
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


async def test_ingest_reads_devices_over_mqtts_into_kafka(
    settings: Settings, pool: Any, uid: str, tls_broker: tuple[int, int, TlsFiles]
) -> None:
    public, internal, tls = tls_broker
    enterprise, device = f"ent-{uid}", f"freezer-{uid}"
    await register_device(
        pool, enterprise_id=enterprise, site_id=f"site-{uid}", device_id=device, profile="freezer"
    )
    s = settings.model_copy(update={"mqtt_url": service_url(internal, tls.ca)})
    assert s.kafka_bootstrap
    async with (
        KafkaTail(s.kafka_bootstrap, TELEMETRY) as telemetry,
        MqttKafkaBridge(s, client_id=f"vigil-ingest-tls-{uid}"),
    ):
        ts = now_ms() - 1_000
        payload = orjson.dumps({"ts": ts, "metrics": {"temperature": -19.5}})
        topic = f"vigil/v1/{enterprise}/{device}/telemetry"
        await asyncio.to_thread(publish_over_tls, public, tls.ca, f"device.{device}", topic, payload)
        [reading] = await telemetry.wait_for(lambda r: r.get("device_id") == device, timeout=20)
    assert reading["ts"] == ts and reading["metrics"] == {"temperature": -19.5}


async def test_without_the_ca_or_without_tls_nothing_connects(tls_broker: tuple[int, int, TlsFiles]) -> None:
    _, internal, _ = tls_broker
    untrusted = service_url(internal, None)  # the system's trust store does not know the test's CA
    with pytest.raises(
        InfrastructureUnavailable, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed"
    ):
        await mqtt.connect(mqtt.mqtt_client(untrusted, "t1"), untrusted)
    plain = untrusted.replace("mqtts://", "mqtt://")
    with pytest.raises(InfrastructureUnavailable):
        await mqtt.connect(mqtt.mqtt_client(plain, "t2"), plain, timeout_s=3)


def test_tls_parameters_are_checked() -> None:
    for url in ("mqtts://h:8883?ca_file=/x", "mqtt://h:1883?cafile=/x", "mqtts://h?certfile=/c"):
        with pytest.raises(ConfigurationError):
            mqtt.mqtt_client(url)
