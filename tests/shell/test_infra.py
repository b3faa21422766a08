"""The embedded infrastructure itself: both MQTT brokers carry QoS 1 traffic, and everything
embedded is gone after its owner is killed with -9."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from shell.infra import start_mqtt
from tests.helpers import MqttTail, publish


@pytest.mark.parametrize("prefer_mosquitto", [True, False], ids=["mosquitto-if-present", "amqtt"])
async def test_embedded_mqtt_broker_round_trip(prefer_mosquitto):
    with tempfile.TemporaryDirectory() as workdir:
        proc, url = start_mqtt(Path(workdir), prefer_mosquitto=prefer_mosquitto)
        try:
            async with MqttTail(url, "vigil/v1/e1/notices") as tail:
                publish(url, "vigil/v1/e1/notices", b'{"hello": 1}')
                assert await tail.next(timeout=10) == ("vigil/v1/e1/notices", b'{"hello": 1}')
        finally:
            proc.stop()


OWNER = """
import sys, time
from shell.infra import Infrastructure
from vigil.settings import Settings
infra = Infrastructure(Settings())
infra.start()
print(infra.workdir, flush=True)
time.sleep(120)
"""


def _alive(pattern: str) -> bool:
    return subprocess.run(["pgrep", "-f", pattern], capture_output=True).returncode == 0


def test_embedded_parts_die_with_their_owner_even_on_kill_9():
    owner = subprocess.Popen([sys.executable, "-c", OWNER], stdout=subprocess.PIPE, text=True)
    try:
        workdir = owner.stdout.readline().strip()
        assert workdir and _alive(workdir), "the embedded PostgreSQL runs from the owner's work dir"
    finally:
        owner.kill()
        owner.wait()
    for _ in range(100):
        if not _alive(workdir) and not Path(workdir).exists():
            break
        time.sleep(0.1)
    assert not _alive(workdir), "PostgreSQL outlived its owner"
    assert not Path(workdir).exists(), "the embedded data directory was left behind"
