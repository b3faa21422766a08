"""MQTT topic ACLs generated from the registry, enforced by a real Mosquitto.

The ACL and password files come from `vigil mqtt acl` run against the real database; a private
Mosquitto (its own port, its own config in tmp_path, never the system one) loads them, and real
clients then try what a compromised device or a curious enterprise would.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from pydantic import SecretStr

from shell import mqtt_acl
from shell.infra import free_port, wait_for_port
from vigil.errors import ConfigurationError
from vigil.registry import register_device
from vigil.settings import Settings

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
KEY = "k3y-for-tests-only-0123456789abcdef"

pytestmark = pytest.mark.skipif(not os.access(MOSQUITTO, os.X_OK), reason="mosquitto is not installed")


class Client:
    """A paho client that reports connect and subscribe results and collects what it receives."""

    def __init__(self, port: int, username: str | None, password: str | None) -> None:
        self.received: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self._connected: queue.Queue[int] = queue.Queue()
        self._subacks: queue.Queue[list[Any]] = queue.Queue()
        self.c = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
        if username is not None:
            self.c.username_pw_set(username, password)
        self.c.on_connect = lambda _c, _u, _f, rc, _p: self._connected.put(rc.value)
        self.c.on_subscribe = lambda _c, _u, _m, codes, _p: self._subacks.put(list(codes))
        self.c.on_message = lambda _c, _u, msg: self.received.put((msg.topic, msg.payload))
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        self.rc = self._connected.get(timeout=10)

    def subscribe(self, topic: str) -> bool:
        """True when the SUBACK did not carry the failure code."""
        self.c.subscribe(topic, qos=1)
        [code] = self._subacks.get(timeout=10)
        return not code.is_failure

    def publish(self, topic: str, payload: bytes) -> None:
        # QoS 1 is acknowledged even when the ACL drops the message (MQTT 3.1.1 has no way to say
        # "denied" in a PUBACK), so delivery is what the tests check, never the acknowledgement.
        self.c.publish(topic, payload, qos=1).wait_for_publish(10)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def drain(q: queue.Queue[tuple[str, bytes]], until: bytes, timeout: float = 10.0) -> list[tuple[str, bytes]]:
    """Everything received up to and including the message whose payload is `until`."""
    got: list[tuple[str, bytes]] = []
    deadline = time.monotonic() + timeout
    while True:
        item = q.get(timeout=max(0.1, deadline - time.monotonic()))
        got.append(item)
        if item[1] == until:
            return got


@pytest.fixture
async def registry_files(pool: Any, settings: Settings, uid: str, tmp_path: Path) -> dict[str, str]:
    """Two enterprises with one device each, in the real registry, and the files `vigil mqtt acl`
    writes from it. Returns the names used."""
    names = {
        "ent_a": f"entA-{uid}",
        "ent_b": f"entB-{uid}",
        "dev_a": f"devA-{uid}",
        "dev_b": f"devB-{uid}",
    }
    for ent, dev in (("ent_a", "dev_a"), ("ent_b", "dev_b")):
        await register_device(
            pool, enterprise_id=names[ent], site_id=f"s-{names[dev]}", device_id=names[dev], profile="freezer"
        )
    keyed = settings.model_copy(update={"mqtt_credential_key": SecretStr(KEY)})
    args = argparse.Namespace(
        mqtt_command="acl",
        out=str(tmp_path / "acl"),
        passwd=str(tmp_path / "passwd"),
        service_passwd=str(tmp_path / "service-passwd"),
        service_user="vigil",
    )
    assert await mqtt_acl.run(keyed, args) == 0
    return names


@dataclass(frozen=True)
class Ports:
    public: int  # devices and enterprises
    internal: int  # the service account


@pytest.fixture
def broker(registry_files: dict[str, str], tmp_path: Path) -> Iterator[Ports]:
    """The production layout (`render_mosquitto_conf`, without TLS) on loopback."""
    ports = Ports(free_port(), free_port())
    conf = tmp_path / "mosquitto.conf"
    listeners = mqtt_acl.render_mosquitto_conf(
        mqtt_acl.Listener(ports.public, "127.0.0.1"),
        mqtt_acl.Listener(ports.internal, "127.0.0.1"),
        str(tmp_path),
    )
    conf.write_text(listeners + f"persistence false\nuser {pwd.getpwuid(os.getuid()).pw_name}\n")
    with (tmp_path / "mosquitto.log").open("wb") as log:
        proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(ports.public, 10, proc)
        wait_for_port(ports.internal, 10, proc)
        yield ports
    finally:
        proc.terminate()
        proc.wait(10)


def connect(ports: Ports, username: str) -> Client:
    port = ports.internal if username == "vigil" else ports.public
    client = Client(port, username, mqtt_acl.derive_password(KEY, username))
    assert client.rc == 0, f"{username} was refused (rc {client.rc})"
    return client


def test_generated_files_are_owner_only_and_name_every_account(
    registry_files: dict[str, str], tmp_path: Path
) -> None:
    acl = (tmp_path / "acl").read_text()
    n = registry_files
    assert f"user device.{n['dev_a']}\ntopic write vigil/v1/{n['ent_a']}/{n['dev_a']}/telemetry\n" in acl
    assert f"user enterprise.{n['ent_b']}\ntopic read vigil/v1/{n['ent_b']}/notices\n" in acl
    assert "pattern" not in acl and "+" not in acl.replace("$share/+/", "")
    passwd = (tmp_path / "passwd").read_text().splitlines()
    users = {line.split(":", 1)[0] for line in passwd}
    assert {f"device.{n['dev_a']}", f"enterprise.{n['ent_b']}"} <= users and "vigil" not in users
    assert [line.split(":", 1)[0] for line in (tmp_path / "service-passwd").read_text().splitlines()] == [
        "vigil"
    ]
    assert all(line.split(":", 1)[1].startswith("$7$101$") for line in passwd)
    for name in ("acl", "passwd", "service-passwd"):
        assert (tmp_path / name).stat().st_mode & 0o077 == 0


def test_a_device_publishes_only_under_its_own_enterprise_and_id(
    broker: Ports, registry_files: dict[str, str]
) -> None:
    n = registry_files
    service = connect(broker, "vigil")
    device_a = connect(broker, f"device.{n['dev_a']}")
    try:
        assert service.subscribe("vigil/#")
        forbidden = [
            f"vigil/v1/{n['ent_b']}/{n['dev_b']}/telemetry",  # B's device, B's enterprise
            f"vigil/v1/{n['ent_b']}/{n['dev_a']}/telemetry",  # its own id under B's enterprise
            f"vigil/v1/{n['ent_a']}/{n['dev_b']}/telemetry",  # another device under its enterprise
            f"vigil/v1/{n['ent_b']}/notices",  # a forged notice to B
            f"vigil/v1/{n['ent_a']}/{n['dev_a']}/config",  # not a device message kind
        ]
        for topic in forbidden:
            device_a.publish(topic, b"forged")
        own = f"vigil/v1/{n['ent_a']}/{n['dev_a']}/telemetry"
        device_a.publish(own, b"sentinel")
        # The broker keeps one publisher's messages in order: whatever got through came before it.
        got = drain(service.received, until=b"sentinel")
        assert got == [(own, b"sentinel")]
        # A device may not read anything, not even its own topics or its enterprise's notices.
        device_a.subscribe(f"vigil/v1/{n['ent_a']}/notices")
        device_a.subscribe("#")
        service.publish(f"vigil/v1/{n['ent_a']}/notices", b"notice")
        service.publish(own, b"end")
        assert [p for _, p in drain(service.received, until=b"end")] == [b"notice", b"end"]
        # Mosquitto fans a message out to every subscriber while handling it: by the time the
        # service saw "end", device A's copies (if any) were on their way.
        time.sleep(0.5)
        assert device_a.received.empty()
    finally:
        service.close()
        device_a.close()


def test_an_enterprise_reads_only_its_own_notices(broker: Ports, registry_files: dict[str, str]) -> None:
    n = registry_files
    service = connect(broker, "vigil")
    ent_a = connect(broker, f"enterprise.{n['ent_a']}")
    try:
        # Mosquitto 2.0 acknowledges any subscription and checks the ACL on every delivery, so
        # what counts is what arrives: B's notices must not, through an exact or a wildcard filter.
        for topic in (
            f"vigil/v1/{n['ent_b']}/notices",
            f"vigil/v1/{n['ent_b']}/{n['dev_b']}/telemetry",
            "vigil/v1/+/notices",
            "vigil/#",
            "#",
        ):
            ent_a.subscribe(topic)
        assert ent_a.subscribe(f"vigil/v1/{n['ent_a']}/notices")
        service.publish(f"vigil/v1/{n['ent_b']}/notices", b"for B")
        service.publish(f"vigil/v1/{n['ent_b']}/{n['dev_b']}/telemetry", b"B reading")
        service.publish(f"vigil/v1/{n['ent_a']}/notices", b"for A")
        got = drain(ent_a.received, until=b"for A")
        assert {payload for _, payload in got} == {b"for A"}
        # An enterprise account cannot publish a notice either (to itself or anyone).
        assert service.subscribe("vigil/#")
        ent_a.publish(f"vigil/v1/{n['ent_b']}/notices", b"forged by A")
        service.publish(f"vigil/v1/{n['ent_a']}/notices", b"end")
        assert [p for _, p in drain(service.received, until=b"end")] == [b"end"]
    finally:
        service.close()
        ent_a.close()


def test_wrong_or_missing_credentials_are_refused(broker: Ports, registry_files: dict[str, str]) -> None:
    n = registry_files
    anonymous = Client(broker.public, None, None)
    wrong = Client(broker.public, f"device.{n['dev_a']}", mqtt_acl.derive_password("another-key", "x"))
    # Device A's password does not open device B's account.
    swapped = Client(
        broker.public, f"device.{n['dev_b']}", mqtt_acl.derive_password(KEY, f"device.{n['dev_a']}")
    )
    try:
        # CONNACK 5 "not authorised", which paho reports as MQTT 5's reason code 135
        assert (anonymous.rc, wrong.rc, swapped.rc) == (135, 135, 135)
    finally:
        for c in (anonymous, wrong, swapped):
            c.close()


def test_ids_that_could_widen_a_rule_are_refused() -> None:
    for bad in ("#", "a+b", "a/b", "a b", "x\nuser vigil", ""):
        with pytest.raises(ConfigurationError, match="must be 1-64 characters"):
            mqtt_acl.render_acl(mqtt_acl.RegistryView((("ent", bad),), ()))
        with pytest.raises(ConfigurationError):
            mqtt_acl.render_acl(mqtt_acl.RegistryView((), (bad,)))
    with pytest.raises(ConfigurationError, match="service account"):
        mqtt_acl.render_acl(mqtt_acl.RegistryView((), ()), service_user="device.x")


async def test_password_file_needs_a_strong_key(settings: Settings, tmp_path: Path) -> None:
    production = settings.model_copy(update={"mode": "production", "mqtt_credential_key": None})
    args = argparse.Namespace(
        mqtt_command="acl", out=str(tmp_path / "acl"), passwd=str(tmp_path / "pw"), service_user="vigil"
    )
    with pytest.raises(ConfigurationError, match="VIGIL_MQTT_CREDENTIAL_KEY"):
        await mqtt_acl.run(production, args)
    assert not (tmp_path / "acl").exists()  # refused before anything was written


def test_hash_matches_mosquitto_passwd(tmp_path: Path) -> None:
    """Our `$7$` hash verifies under Mosquitto's own tool's format: same fields, same lengths."""
    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        pytest.skip("mosquitto_passwd is not installed")
    path = tmp_path / "pw"
    subprocess.run([tool, "-b", "-c", str(path), "u", "pw"], check=True, capture_output=True)
    theirs = path.read_text().strip().split(":", 1)[1].split("$")
    ours = mqtt_acl.mosquitto_hash("pw").split("$")
    assert [len(p) for p in ours] == [len(p) for p in theirs] and ours[:3] == theirs[:3]
