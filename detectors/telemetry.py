"""The telemetry detector service: `vigil.telemetry.v1` → rules → `vigil.violations.v1`.

A consumer-group member: N copies split the partitions. Offsets are committed only after the
violations of a batch are acknowledged by the broker, so a crash replays readings, and the
deterministic violation ids make the replay harmless downstream.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord

from detectors.cold_chain import ColdChainRule
from vigil.db import make_pool
from vigil.errors import InvalidMessage
from vigil.events import Telemetry, decode_device_message, encode
from vigil.kafka import DeadLetterSink, consume_batches, ensure_topics, make_consumer, make_producer
from vigil.registry import Device, DeviceRegistry
from vigil.service import Service
from vigil.settings import Settings
from vigil.topics import TELEMETRY, VIOLATIONS

log = logging.getLogger(__name__)

GROUP_ID = "vigil-detector-telemetry"
# A reload on a registry miss waits at most this long before the cached registry is used.
_REGISTRY_TIMEOUT_S = 2.0


@dataclass(slots=True)
class DetectorStats:
    readings: int = 0
    violations: int = 0
    dead_lettered: int = 0


class TelemetryDetector(Service):
    name = "detector-telemetry"

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        assert settings.kafka_bootstrap and settings.database_url, "infrastructure URLs must be resolved"
        self._settings = settings
        self._pool = make_pool(settings.database_url, max_size=2, name=self.name)
        self._registry = DeviceRegistry(self._pool)
        self._rule = ColdChainRule()
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._deadletter: DeadLetterSink | None = None
        self.stats = DetectorStats()

    async def _start(self) -> None:
        bootstrap = self._settings.kafka_bootstrap
        assert bootstrap
        await ensure_topics(bootstrap)
        await self._pool.open(wait=True)
        await self._registry.load()
        self._producer = make_producer(
            bootstrap, idempotent=self._settings.kafka_idempotent_producer, client_id=self.name
        )
        await self._producer.start()
        self._deadletter = DeadLetterSink(self._producer, self.name)
        self._consumer = make_consumer(bootstrap, GROUP_ID, TELEMETRY, client_id=self.name)
        await self._consumer.start()
        self.spawn(consume_batches(self._consumer, self._handle), "consume")
        self.spawn(self._refresh_registry(), "registry")

    async def _stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
        if self._producer is not None:
            await self._producer.stop()
        await self._pool.close()

    async def _refresh_registry(self) -> None:
        # Attributes (a freezer's own limit) change rarely; the hot loop reads the cache only.
        while True:
            await asyncio.sleep(30)
            try:
                await self._registry.load()
            except Exception:
                log.exception("registry refresh failed; keeping the cached registry")

    async def _device(self, device_id: str) -> Device | None:
        """The registered device, reloading the registry for a newly registered one (at most once a
        second); if the database is unreachable, the cached registry is used."""
        try:
            return await asyncio.wait_for(self._registry.lookup(device_id), _REGISTRY_TIMEOUT_S)
        except Exception as exc:
            log.warning("device registry unavailable (%s); using the cached registry", exc)
            return self._registry.get(device_id)

    async def _handle(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        assert self._producer is not None and self._deadletter is not None
        sends = []
        for record in records:
            try:
                message = decode_device_message(record.value or b"")
            except InvalidMessage as exc:
                self.stats.dead_lettered += 1
                sends.append(
                    await self._deadletter.send(
                        source=f"{record.topic}/{record.partition}@{record.offset}",
                        reason=exc.reason,
                        detail=exc.detail,
                        payload=record.value or b"",
                        key=record.key,
                    )
                )
                continue
            if not isinstance(message, Telemetry):
                continue  # events and status are for the rule engine (device profiles)
            self.stats.readings += 1
            device = await self._device(message.device_id)
            attributes = device.attributes if device is not None else {}
            for violation in self._rule.evaluate(message, attributes):
                self.stats.violations += 1
                sends.append(
                    await self._producer.send(VIOLATIONS, encode(violation), key=violation.source_id.encode())
                )
        # Every violation and dead letter of the batch must be on the broker before the offsets move on.
        if sends:
            await asyncio.gather(*sends)
