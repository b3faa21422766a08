"""The skeleton every Kafka-consuming service shares: a consumer-group member that handles each
fetched batch, then commits (at-least-once), with a producer, a dead-letter sink and a database
pool. Subclasses name their topic and group and implement `handle`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import TypeAlias

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, ConsumerRecord
from aiokafka.errors import KafkaError
from aiokafka.structs import RecordMetadata, TopicPartition

from vigil import metrics
from vigil.db import make_pool
from vigil.kafka import (
    DeadLetterSink,
    consume_batches,
    ensure_topics,
    group_session_timeout_ms,
    make_consumer,
    service_producer,
)
from vigil.service import Service
from vigil.settings import Settings

Record: TypeAlias = ConsumerRecord[bytes, bytes]

log = logging.getLogger(__name__)

# Consumer lag is sampled this often: a third of Prometheus's default 15 s scrape interval, so each
# scrape sees a value at most 5 s old, at the cost of a dictionary read per partition.
LAG_SAMPLE_S = 5.0
# A partition whose position is not known yet (just assigned, offsets being fetched) is skipped
# rather than waited for longer than this.
_POSITION_TIMEOUT_S = 1.0


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
        self._lag_reported: set[TopicPartition] = set()

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
        self._producer_or_none = service_producer(self._settings, self.name)
        await self._producer_or_none.start()
        self._deadletter_or_none = DeadLetterSink(self._producer_or_none, self.name)
        session_ms = await group_session_timeout_ms(bootstrap)  # short, unless the broker refuses it
        self._consumer = make_consumer(
            bootstrap, self.group_id, client_id=self.name, session_timeout_ms=session_ms
        )
        self._consumer.subscribe([self.topic], listener=_Rebalance(self, self._consumer))
        await self._consumer.start()
        self.spawn(
            consume_batches(self._consumer, self.handle, rewind=self.rewind, max_records=self.max_records),
            "consume",
        )
        self.spawn(self._sample_lag_forever(), "lag")

    async def sample_lag(self) -> dict[TopicPartition, int]:
        """Set `vigil_kafka_consumer_lag` for each assigned partition whose high watermark is known
        (it comes with fetch responses) and drop the partitions no longer assigned; returns the lags."""
        consumer = self._consumer
        if consumer is None:
            return {}
        lags: dict[TopicPartition, int] = {}
        for tp in consumer.assignment():
            # Revoked in between, or no position yet: this partition waits for the next sample.
            with contextlib.suppress(AssertionError, KafkaError, TimeoutError):
                high = consumer.highwater(tp)
                if high is None:
                    continue
                position = await asyncio.wait_for(consumer.position(tp), _POSITION_TIMEOUT_S)
                lags[tp] = max(0, high - position)
        for tp, lag in lags.items():
            metrics.consumer_lag.labels(self.group_id, tp.topic, str(tp.partition)).set(lag)
        # A partition that went to another member is its lag no longer: drop the series, else it
        # would stay frozen at its last value.
        assigned = consumer.assignment()
        for tp in self._lag_reported - assigned:
            with contextlib.suppress(KeyError):
                metrics.consumer_lag.remove(self.group_id, tp.topic, str(tp.partition))
        self._lag_reported = (self._lag_reported & assigned) | lags.keys()
        return lags

    async def _sample_lag_forever(self) -> None:
        while True:
            await asyncio.sleep(LAG_SAMPLE_S)
            try:
                await self.sample_lag()
            except Exception:  # a metric must never take the service down
                log.exception("sampling the consumer lag failed")

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
