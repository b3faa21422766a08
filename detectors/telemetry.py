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

from aiokafka import AIOKafkaConsumer, TopicPartition

from detectors.cold_chain import ColdChainRule
from vigil.errors import InvalidMessage
from vigil.events import Telemetry, decode_device_message, encode
from vigil.kafka import now_ms
from vigil.registry import Device, DeviceRegistry
from vigil.settings import Settings
from vigil.topics import TELEMETRY, VIOLATIONS
from vigil.worker import KafkaWorker, Record

log = logging.getLogger(__name__)

# Attributes (a freezer's own limit) change rarely: a full reload this often is plenty, and a
# newly registered device is picked up at once by the reload-on-miss.
_REGISTRY_REFRESH_S = 30.0
# A reload on a registry miss waits at most this long before the cached registry is used.
_REGISTRY_TIMEOUT_S = 2.0


@dataclass(slots=True)
class DetectorStats:
    readings: int = 0
    violations: int = 0
    dead_lettered: int = 0


class TelemetryDetector(KafkaWorker):
    name = "detector-telemetry"
    topic = TELEMETRY
    group_id = "vigil-detector-telemetry"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._registry = DeviceRegistry(self._pool)
        # Rule state per partition: a revoked partition's state is dropped, an assigned one's is
        # rebuilt by replay, so N detectors never judge a device on stale state.
        self._rules: dict[int, ColdChainRule] = {}
        self.stats = DetectorStats()

    async def _prepare(self) -> None:
        await self._registry.load()
        self.spawn(self._registry.refresh_forever(_REGISTRY_REFRESH_S), "registry")

    async def partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        for tp in revoked:
            self._rules.pop(tp.partition, None)

    async def partitions_assigned(self, consumer: AIOKafkaConsumer, assigned: set[TopicPartition]) -> None:
        """Rebuild rule state by re-reading the replay window of each assigned partition. A crash
        or a rebalance then neither misses an excursion that was under way nor its clearing; what
        the replay re-emits has the same deterministic ids, which the alert store absorbs."""
        for tp in assigned:
            self._rules.pop(tp.partition, None)
        window_ms = int(self._settings.detector_replay_window_s * 1000)
        if not assigned or window_ms == 0:
            return
        since = now_ms() - window_ms
        found = await consumer.offsets_for_times({tp: since for tp in assigned})
        for tp, at in found.items():
            if at is not None:
                consumer.seek(tp, at.offset)
        log.info(
            "replaying the last %ds of %d partitions to rebuild rule state", window_ms // 1000, len(found)
        )

    async def rewind(self) -> None:
        # The failed batch already advanced the rule state: rebuild it, exactly as for a newly
        # assigned partition, so the violations it could not send are emitted again.
        assert self._consumer is not None
        await self.partitions_assigned(self._consumer, self._consumer.assignment())

    async def _device(self, device_id: str) -> Device | None:
        """The registered device, reloading the registry for a newly registered one (at most once a
        second); if the database is unreachable, the cached registry is used."""
        try:
            return await asyncio.wait_for(self._registry.lookup(device_id), _REGISTRY_TIMEOUT_S)
        except Exception as exc:
            log.warning("device registry unavailable (%s); using the cached registry", exc)
            return self._registry.get(device_id)

    async def handle(self, records: Sequence[Record]) -> None:
        sends = []
        for record in records:
            try:
                message = decode_device_message(record.value or b"")
            except InvalidMessage as exc:
                self.stats.dead_lettered += 1
                sends.append(await self.dead_letter(record, exc.reason, exc.detail))
                continue
            if not isinstance(message, Telemetry):
                continue  # events and status are for the rule engine (device profiles)
            self.stats.readings += 1
            device = await self._device(message.device_id)
            attributes = device.attributes if device is not None else {}
            rule = self._rules.setdefault(record.partition, ColdChainRule())
            for violation in rule.evaluate(message, attributes):
                self.stats.violations += 1
                sends.append(
                    await self.producer.send(VIOLATIONS, encode(violation), key=violation.source_id.encode())
                )
        # Every violation and dead letter of the batch must be on the broker before the offsets move on.
        if sends:
            await asyncio.gather(*sends)
