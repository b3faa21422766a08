"""The ingest service: device MQTT traffic → `vigil.telemetry.v1`, refusals → `vigil.deadletter.v1`.

Delivery is at-least-once from the device to Kafka. The MQTT session is persistent (fixed client
id, clean_session=False) and paho's automatic PUBACK is off (`manual_ack=True`): a message is
acknowledged to the broker only after Kafka has acknowledged its record, or its dead letter. If
ingest dies in between, the broker still holds the message and delivers it again when ingest
reconnects with the same client id; the duplicate is harmless downstream (deterministic ids).

Threads: paho's network thread appends each message to a bounded inbox and wakes the event loop
only when the worker is idle (one loop call per batch); the worker validates a batch, produces it
as one record batch per partition (ingest.produce) and acknowledges it once Kafka has it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NamedTuple

import paho.mqtt.client as paho
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, MessageSizeTooLargeError
from aiokafka.structs import RecordMetadata
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from ingest.payloads import (
    Limits,
    attributes,
    check_size,
    parse_payload,
    parse_topic,
    thingsboard_telemetry,
)
from ingest.produce import PartitionBatcher
from ingest.thingsboard import PREFIX as THINGSBOARD_PREFIX
from ingest.thingsboard import ThingsBoardEndpoint
from vigil import metrics, mqtt
from vigil.db import make_pool
from vigil.errors import InfrastructureUnavailable, InvalidMessage, UnknownSource
from vigil.events import encode
from vigil.kafka import DeadLetterSink, ensure_topics, now_ms, service_producer
from vigil.keys import credential_digest, device_for_token
from vigil.registry import Device, DeviceRegistry
from vigil.service import Service
from vigil.settings import Settings
from vigil.topics import MQTT_DEVICE_SUBSCRIPTION, TELEMETRY

log = logging.getLogger(__name__)

# Messages per worker batch: large enough to amortise a Kafka round trip, small enough that one
# batch's PUBACKs are not held back long.
BATCH_MAX = 500
SUBSCRIBE_TIMEOUT_S = 10.0
# The registry is reloaded in the background this often, so the hot path only reads the cache.
REGISTRY_REFRESH_S = 10.0
# A registry lookup that must reach the database (an unknown id) waits at most this long; after a
# failure the cache alone is used for a while, so a database outage cannot stall every message.
REGISTRY_LOOKUP_TIMEOUT_S, REGISTRY_BACKOFF_S = 2.0, 5.0
# Backoff while Kafka refuses a batch: fast for a blip, capped so recovery is noticed quickly.
_RETRY_FIRST_S, _RETRY_MAX_S = 0.2, 5.0
# How often a paho thread blocked on a full queue checks whether the service is stopping.
_PUT_POLL_S = 0.5
# A larger record goes alone through `producer.send`, whose path dead-letters a record Kafka refuses
# for its size; readings are far smaller (64 KiB payload limit), batches capped at 256 KiB.
_BATCHED_RECORD_MAX = 128 * 1024
# A ThingsBoard access token's device is looked up at most this often per token: revoking a token
# ends its use within this time, even on a connection already open.
TOKEN_CACHE_S = 5.0


def default_client_id() -> str:
    """Stable across restarts of the same host, so the broker resumes this instance's session."""
    return f"vigil-ingest-{socket.gethostname()}"


class Inbound(NamedTuple):
    """One MQTT message as the network thread hands it over."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    generation: int  # the MQTT connection it arrived on; a mid means nothing on another one
    received_at: int


@dataclass(frozen=True, slots=True)
class BridgeStatsSnapshot:
    received: int
    forwarded: int
    records: int
    dead_lettered: Mapping[str, int]


@dataclass(slots=True)
class BridgeStats:
    """Counters, touched only on the event loop. `forwarded` counts MQTT messages on Kafka,
    `records` the Kafka records they became (a ThingsBoard list is several)."""

    received: int = 0
    forwarded: int = 0
    records: int = 0
    dead_lettered: dict[str, int] = field(default_factory=dict)

    def snapshot(self) -> BridgeStatsSnapshot:
        return BridgeStatsSnapshot(
            self.received, self.forwarded, self.records, MappingProxyType(dict(self.dead_lettered))
        )


@dataclass(frozen=True, slots=True)
class _Verdict:
    message: Inbound
    key: bytes | None
    records: list[bytes]
    rejection: InvalidMessage | None = None


_Accepted = tuple[Inbound, bytes, list[bytes]]  # a message accepted: (it, its Kafka key, its records)
_Outcome = _Verdict | _Accepted


class MqttKafkaBridge(Service):
    name = "ingest"

    def __init__(self, settings: Settings, *, client_id: str | None = None) -> None:
        super().__init__()
        assert settings.kafka_bootstrap and settings.database_url and settings.mqtt_url, (
            "infrastructure URLs must be resolved"
        )
        self._settings = settings
        self._client_id = client_id or settings.ingest_client_id or default_client_id()
        self._limits = Limits.from_settings(settings)
        self._pool = make_pool(settings.database_url, max_size=2, name=self.name)
        self._registry = DeviceRegistry(self._pool)
        self._registry_down_until = 0.0
        self._producer: AIOKafkaProducer | None = None
        self._deadletter: DeadLetterSink | None = None
        self._client: paho.Client | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # The inbox's bound: the paho thread takes a slot per message, the worker gives a batch's
        # back at once; a thread-side semaphore costs no event-loop round trip per message.
        self._slots = threading.BoundedSemaphore(settings.ingest_queue_size)
        # The paho thread appends here and wakes the worker only if idle: one call_soon_threadsafe
        # per batch (per message it was a tenth of ingest's time in the profile).
        self._inbox: list[Inbound] = []
        self._inbox_lock = threading.Lock()
        self._worker_idle, self._wake = False, asyncio.Event()
        self._batcher: PartitionBatcher | None = None
        self._subscribed: asyncio.Future[None] | None = None
        # Bumped on every connect and disconnect, under the lock that acks also take, so a PUBACK
        # is never sent for a mid of an earlier connection (the broker may have reused that mid).
        self._generation = 0
        self._generation_lock = threading.Lock()
        self._stopping = False
        self._thingsboard: ThingsBoardEndpoint | None = None
        self._tokens: dict[bytes, tuple[float, Device | None]] = {}
        self.stats = BridgeStats()

    @property
    def subscription(self) -> str:
        group = self._settings.ingest_shared_group
        return f"$share/{group}/{MQTT_DEVICE_SUBSCRIPTION}" if group else MQTT_DEVICE_SUBSCRIPTION

    # --- lifecycle ---------------------------------------------------------------------------------

    async def _start(self) -> None:
        try:
            await self._start_all()
        except BaseException:
            await self.stop()
            raise

    async def _start_all(self) -> None:
        bootstrap, url = self._settings.kafka_bootstrap, self._settings.mqtt_url
        assert bootstrap and url
        self._loop = asyncio.get_running_loop()
        await ensure_topics(bootstrap)
        await self._pool.open(wait=True)
        await self._registry.load()
        self._producer = service_producer(self._settings, self.name)
        await self._producer.start()
        self._deadletter = DeadLetterSink(self._producer, service=self.name)
        self._batcher = PartitionBatcher(self._producer, TELEMETRY)
        # The worker runs before MQTT connects: a resumed session delivers its backlog at once.
        self.spawn(self._work(), "worker")
        self.spawn(self._registry.refresh_forever(REGISTRY_REFRESH_S), "registry")
        if self._settings.ingest_thingsboard_port:
            self._thingsboard = ThingsBoardEndpoint(
                self._settings.ingest_thingsboard_host, self._settings.ingest_thingsboard_port,
                authenticate=self._token_device, accept=self._accept_thingsboard,
                max_payload_bytes=self._limits.max_payload_bytes,
            )  # fmt: skip
            await self._thingsboard.start()

        self._subscribed = self._loop.create_future()
        client = mqtt.mqtt_client(url, self._client_id, clean_session=False, manual_ack=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        self._client = client
        await mqtt.connect(client, url)  # blocking connect runs in a thread; paho's loop starts
        try:
            await asyncio.wait_for(asyncio.shield(self._subscribed), SUBSCRIBE_TIMEOUT_S)
        except TimeoutError:
            raise InfrastructureUnavailable(
                f"MQTT broker did not acknowledge the subscription to {self.subscription}"
            ) from None
        log.info("ingest subscribed to %s as %s", self.subscription, self._client_id)

    async def _stop(self) -> None:
        # The worker is already cancelled (Service.stop). Messages received but not acknowledged
        # stay in the broker's session and come again on the next start.
        self._stopping = True
        if self._thingsboard is not None:
            await self._thingsboard.stop()
        if self._client is not None:
            await asyncio.to_thread(mqtt.disconnect, self._client)  # joins paho's thread
        if self._producer is not None:
            await self._producer.stop()  # flushes what is still buffered
        await self._pool.close()

    # --- paho callbacks: these run in paho's network thread ----------------------------------------

    def _on_connect(
        self, client: paho.Client, _u: Any, _f: paho.ConnectFlags, reason: ReasonCode, _p: Properties | None
    ) -> None:
        with self._generation_lock:
            self._generation += 1
        if reason.is_failure:
            return
        # Subscribe on every (re)connect: cheap if the session kept it, needed if the broker lost it.
        client.subscribe(self.subscription, qos=1)

    def _on_disconnect(
        self, _c: paho.Client, _u: Any, _f: paho.DisconnectFlags, reason: ReasonCode, _p: Properties | None
    ) -> None:
        with self._generation_lock:
            self._generation += 1
        if not self._stopping:
            log.warning("MQTT connection lost (%s); paho reconnects on its own", reason)

    def _on_subscribe(
        self, _c: paho.Client, _u: Any, _mid: int, codes: list[ReasonCode], _p: Properties | None
    ) -> None:
        failure = next((code for code in codes if code.is_failure), None)
        error = InfrastructureUnavailable(f"MQTT broker refused {self.subscription}: {failure}")
        if self._loop is not None and self._subscribed is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
                self._loop.call_soon_threadsafe(_settle, self._subscribed, error if failure else None)

    def _on_message(self, _c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        # Never raise here: an exception would end paho's network thread.
        try:
            try:
                topic = msg.topic
            except UnicodeDecodeError:  # brokers should refuse these; parse_topic will reject it
                topic = repr(msg._topic)
            item = Inbound(topic, bytes(msg.payload), msg.mid, msg.qos, self._generation, now_ms())
            self._hand_over(item)
        except Exception:
            log.exception("could not hand an MQTT message to the worker; it will be redelivered")

    def _hand_over(self, item: Inbound) -> None:
        """Block this thread until the worker's queue has room.

        This is the back-pressure: while the queue is full, paho's thread stops reading the
        socket, TCP flow control stops the broker, and the broker holds the backlog (bounded by
        its own queue limits), so ingest's memory stays flat however fast devices publish.
        """
        if self._stopping or self._loop is None:
            return
        while not self._slots.acquire(timeout=_PUT_POLL_S):
            if self._stopping:  # not acknowledged, so the broker keeps it for next time
                return
        with self._inbox_lock:
            self._inbox.append(item)
            wake, self._worker_idle = self._worker_idle, False
        if wake:
            self._loop.call_soon_threadsafe(self._wake.set)

    # --- the asyncio side ----------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            self._wake.clear()  # before looking: a wake-up for what is found now is not needed
            with self._inbox_lock:
                batch, self._inbox = self._inbox[:BATCH_MAX], self._inbox[BATCH_MAX:]
                self._worker_idle = not batch
            if not batch:
                await self._wake.wait()
                continue
            self._slots.release(len(batch))
            metrics.ingest_received.inc(len(batch))
            self.stats.received += len(batch)
            accepted, others = await self._judge_all(batch)
            self._count(await self._deliver(others, accepted))
            self._ack(batch)

    async def _judge_all(self, batch: list[Inbound]) -> tuple[list[_Accepted], list[_Verdict]]:
        """(messages accepted, with records; verdicts: refusals, and records too large to batch)."""
        accepted: list[_Accepted] = []
        others: list[_Verdict] = []
        for message in batch:
            key: bytes | None = None
            try:
                enterprise_id, device_id, kind = parse_topic(message.topic)
                key = device_id.encode()
                check_size(message.payload, self._limits)
                device = self._registry.fresh(device_id) or await self._lookup(device_id)
                if device.enterprise_id != enterprise_id:
                    raise UnknownSource(
                        "enterprise_mismatch",
                        f"device {device_id!r} is registered to enterprise {device.enterprise_id!r},"
                        f" but the topic names {enterprise_id!r}",
                    )
                events = parse_payload(kind, message.payload, device, message.received_at, self._limits)
                records = [encode(event) for event in events]
            except Exception as exc:
                if not isinstance(exc, InvalidMessage):  # a bug, not the device's fault: keep going
                    log.exception("unexpected error on a message from %s", message.topic)
                    exc = InvalidMessage("internal_error", f"{type(exc).__name__}: {exc}")
                others.append(_Verdict(message, key, [], exc))
            else:
                if any(len(record) > _BATCHED_RECORD_MAX for record in records):
                    others.append(_Verdict(message, key, records))
                else:
                    accepted.append((message, key, records))
        return accepted, others

    async def _lookup(self, device_id: str) -> Device:
        # A known device in a current cache needs no task and no timer (the profile showed
        # wait_for around a dict lookup costing a sixth of ingest's time).
        cached = self._registry.fresh(device_id)
        if cached is not None:
            return cached
        registry_down = time.monotonic() < self._registry_down_until
        if registry_down:
            device = self._registry.get(device_id)
        else:
            try:
                device = await asyncio.wait_for(self._registry.lookup(device_id), REGISTRY_LOOKUP_TIMEOUT_S)
            except Exception as exc:
                log.warning("device registry unavailable (%s); using the cached registry", exc)
                self._registry_down_until = time.monotonic() + REGISTRY_BACKOFF_S
                registry_down, device = True, self._registry.get(device_id)
        if device is None:
            if registry_down:
                raise InvalidMessage(
                    "registry_unavailable",
                    f"device {device_id!r} is not in the cached registry and the database is unreachable",
                )
            raise UnknownSource(
                "unknown_device", f"device {device_id!r} is not registered; register it before it publishes"
            )
        return device

    # --- ThingsBoard devices (ingest/thingsboard.py) -------------------------------------------

    async def _token_device(self, token: str) -> Device | None:
        """The registered device of a live access token, or None; cached for TOKEN_CACHE_S."""
        digest = credential_digest(token)
        cached = self._tokens.get(digest)
        if cached is not None and time.monotonic() - cached[0] < TOKEN_CACHE_S:
            return cached[1]
        try:
            async with self._pool.connection(timeout=REGISTRY_LOOKUP_TIMEOUT_S) as conn:
                found = await device_for_token(conn, token)
            device = await self._lookup(found.device_id) if found is not None else None
        except InvalidMessage:  # the token's device is gone from the registry
            device = None
        if len(self._tokens) > 100_000:  # bounded: unknown tokens cannot grow it without limit
            self._tokens.clear()
        self._tokens[digest] = (time.monotonic(), device)
        return device

    async def _accept_thingsboard(self, device: Device, kind: str, payload: bytes) -> None:
        """One message of a ThingsBoard device, through the same checks and delivery as the
        broker path; returns once Kafka has its records (or its dead letter)."""
        received_at = now_ms()
        # The topic is the same for every ThingsBoard device: the source names the device too.
        source = f"{THINGSBOARD_PREFIX}{kind} (device {device.device_id})"
        message = Inbound(source, payload, 0, 0, -1, received_at)
        metrics.ingest_received.inc()
        self.stats.received += 1
        key = device.device_id.encode()
        try:
            if kind == "attributes":
                events: list[Any] = [attributes(payload, device, received_at, self._limits)]
            else:
                events = list(thingsboard_telemetry(payload, device, received_at, self._limits))
            verdict = _Verdict(message, key, [encode(event) for event in events])
        except InvalidMessage as exc:
            verdict = _Verdict(message, key, [], exc)
        self._count(await self._deliver([verdict]))

    async def _send(self, verdict: _Verdict) -> list[asyncio.Future[RecordMetadata]]:
        assert self._producer is not None and self._deadletter is not None
        if verdict.rejection is None:
            return [await self._producer.send(TELEMETRY, value, key=verdict.key) for value in verdict.records]
        letter = await self._deadletter.send(
            source=verdict.message.topic,
            reason=verdict.rejection.reason,
            detail=verdict.rejection.detail,
            payload=verdict.message.payload,
            key=verdict.key,
        )
        return [letter]

    async def _send_and_wait(self, verdicts: Sequence[_Verdict], accepted: Sequence[_Accepted] = ()) -> None:
        futures = [future for verdict in verdicts for future in await self._send(verdict)]
        if accepted:
            assert self._batcher is not None
            futures += await self._batcher.send((key, records) for _m, key, records in accepted)
        results = await asyncio.gather(*futures, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _deliver(self, verdicts: list[_Verdict], accepted: Sequence[_Accepted] = ()) -> list[_Outcome]:
        """Get every record and dead letter of the batch acknowledged by Kafka, retrying while
        Kafka is unavailable (nothing is acknowledged to MQTT meanwhile, so the queue fills and
        back-pressure reaches the broker). Returns the outcomes as finally delivered."""
        delay = _RETRY_FIRST_S
        while True:
            try:
                await self._send_and_wait(verdicts, accepted)
                return [*verdicts, *accepted]
            except MessageSizeTooLargeError:
                alone = [*verdicts, *(_Verdict(m, key, records) for m, key, records in accepted)]
                return [await self._deliver_alone(verdict) for verdict in alone]
            except KafkaError as exc:
                n = len(verdicts) + len(accepted)
                log.warning("Kafka refused a batch of %d (%r); retrying in %.1fs", n, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX_S)

    async def _deliver_alone(self, verdict: _Verdict) -> _Outcome:
        """The slow path after a record was refused for what it is: find it, dead-letter it."""
        try:
            await self._send_and_wait([verdict])
            return verdict
        except MessageSizeTooLargeError as exc:
            if verdict.rejection is not None:
                raise  # a truncated dead letter refused too: a broker misconfiguration, fail loudly
            refused = _Verdict(verdict.message, verdict.key, [], InvalidMessage("refused_by_kafka", str(exc)))
            return (await self._deliver([refused]))[0]

    def _count(self, outcomes: Sequence[_Outcome]) -> None:
        forwarded, records = 0, 0
        refused: dict[str, int] = {}
        for verdict in outcomes:
            if isinstance(verdict, tuple):
                forwarded += 1
                records += len(verdict[2])
            elif verdict.rejection is None:
                forwarded += 1
                records += len(verdict.records)
            else:
                reason = verdict.rejection.reason
                refused[reason] = refused.get(reason, 0) + 1
        self.stats.forwarded += forwarded
        self.stats.records += records
        # The Prometheus counters move once per batch: their lock is paid per batch, not per message.
        metrics.ingest_forwarded.inc(forwarded)
        metrics.ingest_records.inc(records)
        for reason, n in refused.items():
            self.stats.dead_lettered[reason] = self.stats.dead_lettered.get(reason, 0) + n
            metrics.ingest_dead_lettered.labels(reason).inc(n)

    def _ack(self, batch: Sequence[Inbound]) -> None:
        """PUBACK the batch, in arrival order (MQTT requires it), for the connection still open."""
        assert self._client is not None
        with self._generation_lock:
            for message in batch:
                if message.qos > 0 and message.generation == self._generation:
                    self._client.ack(message.mid, message.qos)


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    """Resolve `future` once; later (re)subscriptions find it done and change nothing."""
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
