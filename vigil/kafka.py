"""Kafka plumbing shared by every service: clients, topic creation, dead letters, commit-after-work.

Delivery is at-least-once: a consumer commits its offsets only after the work for a batch (a
database write, a produce acknowledged by the broker) is done, so a crash replays, never skips.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError, TopicAlreadyExistsError
from aiokafka.helpers import create_ssl_context
from aiokafka.structs import RecordMetadata

from vigil.errors import ConfigurationError, InfrastructureUnavailable
from vigil.events import DeadLetter, encode
from vigil.settings import Settings, get_settings
from vigil.topics import DEADLETTER, TOPICS

log = logging.getLogger(__name__)

# Backoff while Kafka is away: fast for a blip, capped so recovery is noticed within seconds.
_RETRY_FIRST_S, _RETRY_MAX_S = 0.2, 5.0

# Consumer-group liveness, chosen so that a member killed without leaving (kill -9) is replaced in
# seconds: the coordinator declares a member dead only when its session lapses, and the restarted
# member's join waits for that. On the embedded Tansu 0.6 (a member killed, a new one started at
# once, 3 runs each) the partitions were back after 18.2 s with aiokafka's 10 s session, 4.3 s
# with 2 s, 1.1-1.3 s with 1.5 s; 1 s was no faster (1.1-1.6 s) and leaves less room for a stalled
# event loop on a loaded host. A live member whose loop stalls longer than this is dropped and
# rejoins: a rebalance and a replay, never a loss (commits follow the work).
GROUP_SESSION_TIMEOUT_MS = 1_500
# Static membership (group_instance_id, KIP-345) is not used: Tansu accepts it but makes a
# returning member wait a fixed ~6 s whatever the session, slower than a short session.
# How long the coordinator waits for live members to rejoin a rebalance: a member may first have
# to finish its batch (a database write, then the commit). A member that died is dropped when its
# session lapses, so this does not slow recovery (measured: no difference at 1 s or 10 s).
GROUP_REBALANCE_TIMEOUT_MS = 10_000
# A real Kafka refuses sessions below its group.min.session.timeout.ms (6 s by default); the
# session is never shorter than the floor the broker reports (Tansu reports none).
_SESSION_FLOOR_CONFIG = "group.min.session.timeout.ms"

# Dead-letter payloads keep enough of the original to diagnose it without storing abuse verbatim.
DEADLETTER_PAYLOAD_LIMIT = 4096


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def client_security(settings: Settings | None = None) -> dict[str, Any]:
    """aiokafka's TLS and SASL arguments from the `kafka_security_*`, `kafka_ssl_*` and
    `kafka_sasl_*` settings; {} for PLAINTEXT (the embedded broker, compose's internal Kafka).

    Every producer, consumer and admin client here takes them. By default they come from the
    environment's settings (`get_settings`), the same VIGIL_* variables `vigil run` reads, so that
    every service's clients are secured without each call site passing them along."""
    s = get_settings() if settings is None else settings
    protocol = s.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return {}
    options: dict[str, Any] = {"security_protocol": protocol}
    if protocol in ("SSL", "SASL_SSL"):
        if bool(s.kafka_ssl_certfile) != bool(s.kafka_ssl_keyfile):
            raise ConfigurationError(
                "set both VIGIL_KAFKA_SSL_CERTFILE and VIGIL_KAFKA_SSL_KEYFILE, or neither"
            )
        options["ssl_context"] = create_ssl_context(
            cafile=s.kafka_ssl_cafile, certfile=s.kafka_ssl_certfile, keyfile=s.kafka_ssl_keyfile
        )
    if protocol.startswith("SASL_"):
        if not s.kafka_sasl_username or s.kafka_sasl_password is None:
            raise ConfigurationError(
                f"{protocol} needs VIGIL_KAFKA_SASL_USERNAME and VIGIL_KAFKA_SASL_PASSWORD"
            )
        options |= {
            "sasl_mechanism": s.kafka_sasl_mechanism,
            "sasl_plain_username": s.kafka_sasl_username,
            "sasl_plain_password": s.kafka_sasl_password.get_secret_value(),
        }
    return options


def make_producer(
    bootstrap: str, *, idempotent: bool = False, client_id: str = "vigil", request_timeout_ms: int = 40_000
) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        **client_security(),
        request_timeout_ms=request_timeout_ms,
        bootstrap_servers=bootstrap,
        client_id=client_id,
        acks="all",
        enable_idempotence=idempotent,
        # Small batches flushed quickly: telemetry is latency-sensitive, and linger of a few ms
        # still lets a burst share one request.
        linger_ms=5,
        max_batch_size=256 * 1024,
        # Frames are JPEG: allow requests up to 4 MiB.
        max_request_size=4 * 1024 * 1024,
    )


def service_producer(settings: Settings, client_id: str) -> AIOKafkaProducer:
    """A service's producer, with the settings every service's producer shares (idempotence, the
    request timeout that also bounds how long a stop waits for a batch in flight)."""
    assert settings.kafka_bootstrap
    return make_producer(
        settings.kafka_bootstrap,
        idempotent=settings.kafka_idempotent_producer,
        client_id=client_id,
        request_timeout_ms=settings.kafka_request_timeout_ms,
    )


def make_consumer(
    bootstrap: str,
    group_id: str,
    *topics: str,
    client_id: str = "vigil",
    session_timeout_ms: int = GROUP_SESSION_TIMEOUT_MS,
) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        *topics,
        **client_security(),
        bootstrap_servers=bootstrap,
        group_id=group_id,
        client_id=client_id,
        session_timeout_ms=session_timeout_ms,
        # A third of the session: two heartbeats may be lost before the member is declared dead
        # (Kafka's own ratio); one every 0.5 s is nothing for the coordinator.
        heartbeat_interval_ms=session_timeout_ms // 3,
        rebalance_timeout_ms=max(GROUP_REBALANCE_TIMEOUT_MS, session_timeout_ms),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        # Bounded prefetch: the consumer never holds more than this many bytes per partition.
        max_partition_fetch_bytes=1024 * 1024,
    )


async def start_tail(bootstrap: str, topic: str, *, client_id: str) -> AIOKafkaConsumer:
    """A started consumer without a group, on every partition of `topic` at its end, positions
    resolved before it returns: everything published after this call is read, nothing before.
    For topics every instance must read whole (camera ingest's clip requests and live leases)."""
    consumer = AIOKafkaConsumer(
        **client_security(),
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="latest",
        client_id=client_id,
    )
    await consumer.start()
    try:
        await consumer.topics()  # refreshes the metadata, so the partitions are known
        partitions = consumer.partitions_for_topic(topic) or set()
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        await consumer.seek_to_end(*assigned)
        for tp in assigned:
            await consumer.position(tp)
    except BaseException:
        await consumer.stop()
        raise
    return consumer


async def ensure_topics(bootstrap: str, *, timeout_s: float = 30.0) -> None:
    """Create Vigil's topics if they are missing; wait for the broker up to `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        admin = AIOKafkaAdminClient(**client_security(), bootstrap_servers=bootstrap, client_id="vigil-admin")
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [NewTopic(t.name, t.partitions, 1) for t in TOPICS if t.name not in existing]
            if missing:
                with contextlib.suppress(TopicAlreadyExistsError):  # another service was first
                    await admin.create_topics(missing)
            return
        except KafkaConnectionError as exc:
            if time.monotonic() > deadline:
                raise InfrastructureUnavailable(f"Kafka at {bootstrap} unreachable: {exc}") from exc
            await asyncio.sleep(0.5)
        finally:
            await admin.close()


async def group_session_timeout_ms(bootstrap: str) -> int:
    """GROUP_SESSION_TIMEOUT_MS, or the broker's minimum session if that is longer (a real Kafka's
    group.min.session.timeout.ms); the default alone if the broker does not say."""
    admin = AIOKafkaAdminClient(**client_security(), bootstrap_servers=bootstrap, client_id="vigil-admin")
    try:
        await admin.start()
        brokers = (await admin.describe_cluster())["brokers"]
        resources = [ConfigResource(ConfigResourceType.BROKER, str(brokers[0]["node_id"]))]
        floor = 0
        for response in await admin.describe_configs(resources):
            for resource in response.resources:
                for entry in resource[4]:  # (name, value, ...) per config entry
                    if entry[0] == _SESSION_FLOOR_CONFIG and str(entry[1]).isdigit():
                        floor = int(entry[1])
        return max(GROUP_SESSION_TIMEOUT_MS, floor)
    except (KafkaError, IndexError, KeyError) as exc:
        log.warning("could not read the broker's minimum group session (%r); using %d ms", exc,
                    GROUP_SESSION_TIMEOUT_MS)  # fmt: skip
        return GROUP_SESSION_TIMEOUT_MS
    finally:
        await admin.close()


class DeadLetterSink:
    """Sends refused input to `vigil.deadletter.v1` with a reason (callers count refusals in their stats)."""

    def __init__(self, producer: AIOKafkaProducer, service: str) -> None:
        self._producer = producer
        self._service = service

    async def send(
        self, *, source: str, reason: str, detail: str, payload: bytes, key: bytes | None = None
    ) -> asyncio.Future[RecordMetadata]:
        """Queue the dead letter; the returned future resolves when the broker has it. Callers that
        commit offsets or acknowledge the input must await it first."""
        letter = DeadLetter(
            service=self._service,
            source=source,
            reason=reason,
            detail=detail[:500],
            payload=payload[:DEADLETTER_PAYLOAD_LIMIT].decode("utf-8", errors="replace"),
            received_at=now_ms(),
        )
        log.info("dead-letter %s from %s: %s", reason, source, detail[:200])
        delivery: asyncio.Future[RecordMetadata] = await self._producer.send(
            DEADLETTER, encode(letter), key=key
        )
        return delivery


BatchHandler = Callable[[Sequence[ConsumerRecord[bytes, bytes]]], Awaitable[None]]


async def consume_batches(
    consumer: AIOKafkaConsumer,
    handle: BatchHandler,
    *,
    rewind: Callable[[], Awaitable[None]] | None = None,
    max_records: int = 500,
    timeout_ms: int = 200,
) -> None:
    """Fetch, handle, then commit — forever. A handler error comes *before* the commit, so the
    batch is handled again (at-least-once). After a transient Kafka error (a produce that timed
    out while the broker was away): `rewind` (default: seek back to the committed offsets; a
    stateful handler must also drop the state the failed batch built), back off, go on. After
    any other error: propagate, so the service fails loudly and a restart replays the batch.
    Handlers must therefore be idempotent, which deterministic ids make them."""
    delay = _RETRY_FIRST_S
    while True:
        batches = await consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
        records = [r for rs in batches.values() for r in rs]
        if not records:
            continue
        try:
            await handle(records)
        except KafkaError as exc:
            if not (exc.retriable or isinstance(exc, KafkaTimeoutError)):
                raise
            log.warning("Kafka unavailable while handling a batch (%r); retrying it in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RETRY_MAX_S)
            await (rewind() if rewind is not None else consumer.seek_to_committed())
            continue
        delay = _RETRY_FIRST_S
        try:
            await consumer.commit()
        except KafkaError as exc:
            # A rebalance took the partitions away: the new owner replays from the last commit
            # and idempotent writes absorb the overlap.
            log.warning("offset commit failed (%s); batch will be replayed by the partition owner", exc)
