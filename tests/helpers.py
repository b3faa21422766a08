"""Test helpers that talk to the real brokers: tail a Kafka topic, subscribe to an MQTT topic."""

from __future__ import annotations

import asyncio
import queue
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import orjson
import paho.mqtt.client as mqtt
from aiokafka import AIOKafkaConsumer, TopicPartition


async def start_at_end(bootstrap: str, group_id: str, topic: str) -> None:
    """Commit offsets at the current end of `topic` for `group_id`, a group of the test's own that
    has never had members (a manual assignment commits without joining), so a service started in
    it reads only what comes next."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group_id, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or set())]
        consumer.assign(tps)
        await consumer.commit(dict(await consumer.end_offsets(tps)))
    finally:
        await consumer.stop()


def in_group(worker: Any, group_id: str) -> Any:
    """`worker` (a KafkaWorker, not yet started) in `group_id` instead of its service's group."""
    worker.group_id = group_id
    return worker


class KafkaTail:
    """Reads a topic from its current end (no consumer group), collecting decoded JSON values."""

    def __init__(self, bootstrap: str, topic: str, *, decode: Callable[[Any], Any] | None = None) -> None:
        self._consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        self._topic = topic
        # By default a record is its JSON value; frames (binary values) pass their own decoder.
        self._decode = decode or (lambda r: orjson.loads(r.value))
        self.records: list[Any] = []

    async def __aenter__(self) -> KafkaTail:
        await self._consumer.start()
        partitions = self._consumer.partitions_for_topic(self._topic) or set()
        tps = [TopicPartition(self._topic, p) for p in sorted(partitions)]
        self._consumer.assign(tps)
        await self._consumer.seek_to_end(*tps)
        for tp in tps:  # resolve the end offsets now, before the test produces anything
            await self._consumer.position(tp)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()

    async def wait_for(
        self, predicate: Callable[[Any], bool], *, count: int = 1, timeout: float = 30.0
    ) -> list[Any]:
        deadline = time.monotonic() + timeout
        while True:
            matched = [r for r in self.records if predicate(r)]
            if len(matched) >= count:
                return matched
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{len(matched)}/{count} matching records on {self._topic} in {timeout}s"
                )
            batch = await self._consumer.getmany(timeout_ms=200)
            for records in batch.values():
                self.records.extend(self._decode(r) for r in records if r.value)


class MqttTail:
    """A real MQTT subscriber running paho's network thread."""

    def __init__(self, mqtt_url: str, topic: str, qos: int = 1) -> None:
        url = urlsplit(mqtt_url)
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self._client.on_message = lambda _c, _u, msg: self.messages.put((msg.topic, msg.payload))
        subscribed = asyncio.Event()
        self._subscribed = subscribed
        self._topic, self._qos = topic, qos
        self._host, self._port = url.hostname or "127.0.0.1", url.port or 1883

    async def __aenter__(self) -> MqttTail:
        done = asyncio.get_running_loop().create_future()
        loop = asyncio.get_running_loop()
        # Also fires on re-subscription after a reconnect: settle the future only once.
        self._client.on_subscribe = lambda *a: loop.call_soon_threadsafe(
            lambda: done.done() or done.set_result(None)
        )
        self._client.on_connect = lambda c, *a: c.subscribe(self._topic, self._qos)
        self._client.connect(self._host, self._port)
        self._client.loop_start()
        await asyncio.wait_for(done, 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    async def next(self, timeout: float = 30.0) -> tuple[str, bytes]:
        return await asyncio.to_thread(self.messages.get, True, timeout)


def publish(mqtt_url: str, topic: str, payload: bytes | str, qos: int = 1) -> None:
    """Publish one message like a device would, waiting for the broker's acknowledgement."""
    url = urlsplit(mqtt_url)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.connect(url.hostname or "127.0.0.1", url.port or 1883)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=qos).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()
