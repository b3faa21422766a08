"""The skeleton every Kafka-consuming service shares: a consumer-group member that handles each
fetched batch, then commits (at-least-once), with a producer, a dead-letter sink and a database
pool. Subclasses name their topic and group and implement `handle`."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TypeAlias

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, ConsumerRecord
from aiokafka.structs import RecordMetadata, TopicPartition

from vigil.db import make_pool
from vigil.kafka import DeadLetterSink, consume_batches, ensure_topics, make_consumer, make_producer
from vigil.service import Service
from vigil.settings import Settings

Record: TypeAlias = ConsumerRecord[bytes, bytes]


class KafkaWorker(Service):
    topic: str
    group_id: str
    # Records per fetched batch (the unit of work between commits).
    max_records: int = 500

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        assert settings.kafka_bootstrap and settings.database_url, "infrastructure URLs must be resolved"
        self._settings = settings
        self._pool = make_pool(settings.database_url, max_size=2, name=self.name)
        self._producer_or_none: AIOKafkaProducer | None = None
        self._deadletter_or_none: DeadLetterSink | None = None
        self._consumer: AIOKafkaConsumer | None = None

    @property
    def producer(self) -> AIOKafkaProducer:
        assert self._producer_or_none is not None, f"{self.name} is not started"
        return self._producer_or_none

    async def _prepare(self) -> None:
        """Runs after the pool is open, before consuming starts (migrations, caches)."""

    async def handle(self, records: Sequence[Record]) -> None:
        raise NotImplementedError

    async def rewind(self) -> None:
        """Go back to the last committed offsets after a batch failed half-way (Kafka was away)."""
        assert self._consumer is not None
        await self._consumer.seek_to_committed()

    async def partitions_assigned(self, consumer: AIOKafkaConsumer, assigned: set[TopicPartition]) -> None:
        """After a rebalance, before fetching: a stateful worker may seek back to rebuild state."""

    async def partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Before a rebalance: state kept for these partitions now belongs to another member."""

    async def _start(self) -> None:
        bootstrap = self._settings.kafka_bootstrap
        assert bootstrap
        await ensure_topics(bootstrap)
        await self._pool.open(wait=True)
        await self._prepare()
        self._producer_or_none = make_producer(
            bootstrap, idempotent=self._settings.kafka_idempotent_producer, client_id=self.name
        )
        await self._producer_or_none.start()
        self._deadletter_or_none = DeadLetterSink(self._producer_or_none, self.name)
        self._consumer = make_consumer(bootstrap, self.group_id, client_id=self.name)
        self._consumer.subscribe([self.topic], listener=_Rebalance(self, self._consumer))
        await self._consumer.start()
        self.spawn(
            consume_batches(self._consumer, self.handle, rewind=self.rewind, max_records=self.max_records),
            "consume",
        )

    async def _stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
        if self._producer_or_none is not None:
            await self._producer_or_none.stop()
        await self._pool.close()

    async def dead_letter(self, record: Record, reason: str, detail: str) -> asyncio.Future[RecordMetadata]:
        """Queue a dead letter for `record`; await the result before the batch may be committed."""
        assert self._deadletter_or_none is not None, f"{self.name} is not started"
        return await self._deadletter_or_none.send(
            source=f"{record.topic}/{record.partition}@{record.offset}",
            reason=reason,
            detail=detail,
            payload=record.value or b"",
            key=record.key,
        )


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, worker: KafkaWorker, consumer: AIOKafkaConsumer) -> None:
        self._worker, self._consumer = worker, consumer

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._worker.partitions_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._worker.partitions_assigned(self._consumer, assigned)
