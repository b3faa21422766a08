"""A small simulated site: a restaurant kitchen's cold room, publishing over real MQTT.

Each device is its own MQTT connection with a last will on its status topic, as a real device
would be. One freezer fails after `fail_after_s`, warming past −18 °C, so the demo shows the whole
path: reading → violation → alert → notice.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass, field
from typing import Any

import orjson
from paho.mqtt.client import Client as MqttClient
from psycopg_pool import AsyncConnectionPool

from vigil import mqtt
from vigil.kafka import now_ms
from vigil.registry import register_device
from vigil.service import Service
from vigil.topics import MQTT_PREFIX

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SimulatedDevice:
    device_id: str
    profile: str
    setpoint_c: float
    attributes: dict[str, Any] = field(default_factory=dict)
    fails: bool = False
    thingsboard: bool = False  # publish ThingsBoard's {"ts", "values"} form instead of ours


@dataclass(frozen=True, slots=True)
class SiteSpec:
    enterprise_id: str = "demo-restaurant"
    enterprise_name: str = "Demo Restaurant Co."
    site_id: str = "demo-kitchen-1"
    site_name: str = "Demo kitchen, Xinhua Road"
    interval_s: float = 1.0
    fail_after_s: float = 10.0
    # Short duration so the demo raises within a minute; real freezers use the 15-minute default.
    devices: tuple[SimulatedDevice, ...] = (
        SimulatedDevice("demo-freezer-1", "freezer", -21.0, {"duration_s": 15}, fails=True),
        SimulatedDevice("demo-freezer-2", "freezer", -22.0, {"duration_s": 15}, thingsboard=True),
        SimulatedDevice("demo-chiller-1", "chiller", 4.0, {"duration_s": 15}),
    )


class SimulatedSite(Service):
    name = "simulator"

    def __init__(
        self, mqtt_url: str, pool: AsyncConnectionPool, spec: SiteSpec | None = None, seed: int = 7
    ) -> None:
        super().__init__()
        self._url = mqtt_url
        self._pool = pool
        self.spec = spec or SiteSpec()
        self._rng = random.Random(seed)
        self._clients: list[MqttClient] = []
        self.published = 0

    def topic(self, device: SimulatedDevice, kind: str) -> str:
        return f"{MQTT_PREFIX}/{self.spec.enterprise_id}/{device.device_id}/{kind}"

    async def register(self) -> None:
        for device in self.spec.devices:
            await register_device(
                self._pool,
                enterprise_id=self.spec.enterprise_id,
                enterprise_name=self.spec.enterprise_name,
                site_id=self.spec.site_id,
                site_name=self.spec.site_name,
                device_id=device.device_id,
                profile=device.profile,
                attributes=device.attributes,
            )

    async def _start(self) -> None:
        await self.register()
        for device in self.spec.devices:
            client = mqtt.mqtt_client(self._url, f"sim-{device.device_id}")
            client.will_set(self.topic(device, "status"), b"offline", qos=1)
            await mqtt.connect(client, self._url)
            await mqtt.publish_qos1(client, self.topic(device, "status"), b'{"online": true}')
            self._clients.append(client)
            self.spawn(self._run_device(device, client), device.device_id)

    async def _stop(self) -> None:
        for client in self._clients:
            await asyncio.to_thread(mqtt.disconnect, client)  # joins paho's thread

    def _payload(self, device: SimulatedDevice, temperature: float) -> bytes:
        ts = now_ms()
        reading = {"temperature": round(temperature, 2), "humidity": round(self._rng.uniform(60, 80), 1)}
        if device.thingsboard:
            return orjson.dumps({"ts": ts, "values": reading})
        return orjson.dumps({"ts": ts, "metrics": reading})

    async def _run_device(self, device: SimulatedDevice, client: MqttClient) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        temperature = device.setpoint_c
        while True:
            failing = device.fails and loop.time() - started > self.spec.fail_after_s
            # A failed compressor lets the room warm towards the kitchen's temperature, about a
            # degree a tick at first; a working one holds the setpoint with a little sensor noise.
            target = 2.0 if failing else device.setpoint_c
            temperature += (target - temperature) * (0.04 if failing else 0.5) + self._rng.gauss(0, 0.2)
            await mqtt.publish_qos1(
                client, self.topic(device, "telemetry"), self._payload(device, temperature)
            )
            self.published += 1
            await asyncio.sleep(self.spec.interval_s)
