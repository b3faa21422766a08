"""Client ids are bound to accounts: the production Mosquitto configuration
(deploy/mosquitto/mosquitto.conf, only its paths and ports moved to tmp_path) on a real Mosquitto,
with the files `vigil mqtt acl` writes from the real registry, over TLS with a CA made here.

Mosquitto disconnects a client when another connects with the same client id, and a persistent
session (with the QoS 1 messages queued for it) goes to the newcomer. Under the old single-listener
configuration any device could do that to ingest, whose client id format is documented, or to an
enterprise's notice subscriber.
"""

from __future__ import annotations

import argparse
import os
import pwd
import queue
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from pydantic import SecretStr

from shell import mqtt_acl
from shell.infra import free_port, wait_for_port
from tests.shell.tls_files import OPENSSL, TlsFiles, make_tls_files
from vigil.registry import register_device
from vigil.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
KEY = "k3y-for-client-id-tests-0123456789"
INGEST_ID = "vigil-ingest-host-1"

pytestmark = [
    pytest.mark.skipif(not os.access(MOSQUITTO, os.X_OK), reason="mosquitto is not installed"),
    pytest.mark.skipif(OPENSSL is None, reason="openssl is not installed (the test's CA)"),
]


class Client:
    """A TLS paho client that records its disconnections and what it receives."""

    def __init__(
        self, port: int, ca: Path, username: str, client_id: str, *, persistent: bool = False
    ) -> None:
        self.received: queue.Queue[bytes] = queue.Queue()
        self.disconnects: queue.Queue[Any] = queue.Queue()
        self._connected: queue.Queue[int] = queue.Queue()
        self._subacks: queue.Queue[None] = queue.Queue()
        self.c = paho.Client(
            paho.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=not persistent,
            protocol=paho.MQTTv311,
        )  # fmt: skip
        self.c.tls_set(ca_certs=str(ca))
        self.c.username_pw_set(username, mqtt_acl.derive_password(KEY, username))
        self.c.on_connect = lambda _c, _u, _f, rc, _p: self._connected.put(rc.value)
        self.c.on_disconnect = lambda _c, _u, _f, rc, _p: self.disconnects.put(rc)
        self.c.on_subscribe = lambda *_: self._subacks.put(None)
        self.c.on_message = lambda _c, _u, msg: self.received.put(msg.payload)
        self.c.reconnect_delay_set(30, 60)  # a kicked client must stay kicked while we look
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        self.rc = self._connected.get(timeout=10)

    def subscribe(self, topic: str) -> None:
        self.c.subscribe(topic, qos=1)
        self._subacks.get(timeout=10)

    def publish(self, topic: str, payload: bytes) -> None:
        self.c.publish(topic, payload, qos=1).wait_for_publish(10)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


@pytest.fixture
async def accounts(pool: Any, settings: Settings, uid: str, tmp_path: Path) -> dict[str, str]:
    names = {"ent_a": f"entA-{uid}", "ent_b": f"entB-{uid}", "dev_a": f"devA-{uid}", "dev_b": f"devB-{uid}"}
    for ent, dev in (("ent_a", "dev_a"), ("ent_b", "dev_b")):
        await register_device(
            pool, enterprise_id=names[ent], site_id=f"s-{names[dev]}", device_id=names[dev], profile="freezer"
        )
    auth = tmp_path / "auth"
    args = argparse.Namespace(
        mqtt_command="acl", out=str(auth / "acl"), passwd=str(auth / "passwd"),
        service_passwd=str(auth / "service-passwd"), service_user="vigil",
    )  # fmt: skip
    assert await mqtt_acl.run(settings.model_copy(update={"mqtt_credential_key": SecretStr(KEY)}), args) == 0
    return names


@pytest.fixture
def broker(accounts: dict[str, str], tmp_path: Path) -> Iterator[tuple[int, int, TlsFiles]]:
    """The production configuration with its paths in tmp_path and its ports free ones on loopback:
    (public port, internal port, TLS files)."""
    tls = make_tls_files(tmp_path / "certs")
    public, internal = free_port(), free_port()
    conf = (ROOT / "deploy/mosquitto/mosquitto.conf").read_text()
    assert "listener 8883\n" in conf and "listener 8884\n" in conf
    conf = conf.replace("listener 8883\n", f"listener {public} 127.0.0.1\n")
    conf = conf.replace("listener 8884\n", f"listener {internal} 127.0.0.1\n")
    conf = conf.replace("/mosquitto/auth", str(tmp_path / "auth")).replace("/mosquitto/data/", f"{tmp_path}/")
    conf = conf.replace("/mosquitto/certs/server.crt", str(tls.cert))
    conf = conf.replace("/mosquitto/certs/server.key", str(tls.key))
    settings_lines = [line for line in conf.splitlines() if not line.startswith("#")]
    assert not any("/mosquitto/" in line for line in settings_lines), "a production path was left"
    path = tmp_path / "mosquitto.conf"
    path.write_text(conf + f"user {pwd.getpwuid(os.getuid()).pw_name}\n")
    with (tmp_path / "mosquitto.log").open("wb") as log:
        proc = subprocess.Popen([MOSQUITTO, "-c", str(path)], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(public, 10, proc)
        wait_for_port(internal, 10, proc)
        yield public, internal, tls
    finally:
        proc.terminate()
        proc.wait(10)


def still_connected(victim: Client, feeder: Client, topic: str, marker: bytes) -> bool:
    """The victim was not kicked off: no disconnection, and it still receives what is published."""
    feeder.publish(topic, marker)
    deadline = time.monotonic() + 5
    try:
        while victim.received.get(timeout=max(0.1, deadline - time.monotonic())) != marker:
            pass  # what the victim published itself, under its own `vigil/#`
    except queue.Empty:
        return False
    return victim.disconnects.empty()


def test_no_account_can_take_the_ingest_services_or_an_enterprises_client_id(broker, accounts) -> None:
    public, internal, tls = broker
    n = accounts
    ingest = Client(internal, tls.ca, "vigil", INGEST_ID, persistent=True)
    ent_a = Client(public, tls.ca, f"enterprise.{n['ent_a']}", "erp-a", persistent=True)
    opened: list[Client] = [ingest, ent_a]
    try:
        assert (ingest.rc, ent_a.rc) == (0, 0)
        ingest.subscribe("vigil/#")
        ent_a.subscribe(f"vigil/v1/{n['ent_a']}/notices")
        own = f"vigil/v1/{n['ent_a']}/{n['dev_a']}/telemetry"
        notices = f"vigil/v1/{n['ent_a']}/notices"
        # A device and another enterprise each ask for the ingest service's id and enterprise A's.
        for username in (f"device.{n['dev_b']}", f"enterprise.{n['ent_b']}"):
            for stolen in (INGEST_ID, f"enterprise.{n['ent_a']}", "erp-a"):
                intruder = Client(public, tls.ca, username, stolen, persistent=True)
                opened.append(intruder)
                assert intruder.rc == 0  # let in, but under its own name, its username
                time.sleep(0.3)
                device = Client(public, tls.ca, f"device.{n['dev_a']}", "anything")
                opened.append(device)
                assert still_connected(ingest, device, own, f"{username}/{stolen}".encode())
                assert still_connected(ent_a, ingest, notices, f"{username}/{stolen}".encode())
        # The services' listener takes the service account only, and the public one never does.
        refused = [
            Client(internal, tls.ca, f"device.{n['dev_b']}", INGEST_ID),
            Client(internal, tls.ca, f"enterprise.{n['ent_b']}", INGEST_ID),
            Client(public, tls.ca, "vigil", INGEST_ID),
        ]
        opened += refused
        assert [c.rc for c in refused] == [135, 135, 135]  # CONNACK 5, not authorised
        assert ingest.disconnects.empty() and ent_a.disconnects.empty()
    finally:
        for client in opened:
            client.close()


def test_the_demo_listeners_are_the_production_ones() -> None:
    """deploy/mosquitto/mosquitto.conf holds render_mosquitto_conf's listeners (which the demo and
    test brokers run) for 8883 and 8884 with the certificates compose mounts."""
    certs = {"certfile": "/mosquitto/certs/server.crt", "keyfile": "/mosquitto/certs/server.key"}
    rendered = mqtt_acl.render_mosquitto_conf(
        mqtt_acl.Listener(8883, **certs), mqtt_acl.Listener(8884, **certs), "/mosquitto/auth"
    )
    assert rendered in (ROOT / "deploy/mosquitto/mosquitto.conf").read_text()
