"""The telemetry detector service: `vigil.telemetry.v1` → rule engine → `vigil.violations.v1`.

A consumer-group member: N copies split the partitions. Every device message (telemetry, event,
status) goes to the rule engine of its partition, which judges it against the device's profile
(`detectors/profiles/<profile>.toml`); a device whose profile has no file is not judged at all.
Offsets are committed only after the violations of a batch are acknowledged by the broker, so a
crash replays messages, and the deterministic violation ids make the replay harmless downstream.

Time runs on the messages' own stamps. After each batch the partition's engine is ticked at its
watermark (the newest `received_at` it has seen), and once a second a partition that is caught up
is ticked at the wall clock: that is how a device that has gone silent in a quiet partition is
found offline, or a door left open is noticed with no further message to say so.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError, KafkaTimeoutError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.structs import RecordMetadata

from detectors.early_warning import EarlyWarning
from detectors.rules import Rulebook, RuleEngine
from detectors.rules.profiles import registration_catalogue
from detectors.rules.state_never import NeverConnected, Registered
from detectors.rules.state_reopen import ClosedAlert, reopen
from vigil import metrics
from vigil.errors import InvalidMessage
from vigil.events import DeviceEvent, DeviceStatus, Telemetry, Violation, decode_device_message, encode
from vigil.kafka import now_ms
from vigil.registry import Device, DeviceRegistry, publish_profiles, unknown_profile_detail
from vigil.settings import Settings
from vigil.topics import TELEMETRY, VIOLATIONS
from vigil.worker import KafkaWorker, Record

log = logging.getLogger(__name__)

# Attributes (a freezer's own limit) change rarely: a full reload this often is plenty, and a
# newly registered device is picked up at once by the reload-on-miss.
_REGISTRY_REFRESH_S = 30.0
# A reload on a registry miss waits at most this long before the cached registry is used.
_REGISTRY_TIMEOUT_S = 2.0
# Quiet partitions are ticked this often at the wall clock ...
_TICK_S = 1.0
# ... less this much, for messages still on their way from ingest: a tick must not run ahead of a
# message that is yet to come (it would find a device offline, or a condition still holding, that
# the message would have shown otherwise).
_TICK_GRACE_MS = 10_000
# How often the database is asked for device alerts closed while their condition still held (issue
# 16.5): the new alert follows the close within this, and the query reads a partial index
# (migration 0012_device_watch) that holds only such alerts.
_REOPEN_POLL_S = 5.0
_CLOSED_WHILE_ACTIVE = """
SELECT a.source_id, a.code, a.status, a.closed_at, array_agg(av.violation_id)
FROM alerts a JOIN alert_violations av ON av.alert_id = a.alert_id AND av.state = 'active'
WHERE a.source_kind = 'device' AND a.status IN ('closed', 'dismissed') AND a.cleared_at IS NULL
  AND a.closed_at > now() - make_interval(secs => %s)
GROUP BY a.alert_id
"""
# Devices registered since a partition's known history began: the never-connected candidates
# (issue 16.4), checked on the same poll; the devices_created index (migration 0012) keeps it small.
_REGISTERED_SINCE = """
SELECT device_id, enterprise_id, site_id, profile, attributes, created_at FROM devices WHERE created_at >= %s
"""
# Ingest keys telemetry by device id with the producer's default partitioner: the same function
# says which partition, and so which detector, a device that has never sent anything belongs to.
_PARTITION_OF = DefaultPartitioner()

# Prometheus children bound once; each moves once per batch (see handle).
_READINGS = metrics.telemetry_messages.labels("telemetry")
_EVENTS = metrics.telemetry_messages.labels("event")
_STATUSES = metrics.telemetry_messages.labels("status")
_INVALID = metrics.telemetry_messages.labels("invalid")
_VIOLATIONS = metrics.violations.labels("telemetry")
_LATE = {
    "telemetry": metrics.telemetry_late.labels("telemetry"),
    "event": metrics.telemetry_late.labels("event"),
}


@dataclass(slots=True)
class DetectorStats:
    readings: int = 0
    events: int = 0
    statuses: int = 0
    violations: int = 0
    dead_lettered: int = 0
    late: int = 0  # stamped earlier than the device's newest: stored, counted, not judged


class TelemetryDetector(KafkaWorker):
    name = "detector-telemetry"
    topic = TELEMETRY
    group_id = "vigil-detector-telemetry"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._registry = DeviceRegistry(self._pool)
        # The profiles load (and are validated) here: a bad profile stops the service at start.
        self._rulebook = Rulebook()
        # The learned early warning (models/early-warning.onnx): loaded and warmed up here. Its
        # per-device windows are keyed by device, so a rebalance replays into them harmlessly
        # (a device is scored once per minute of event time, and its ids are deterministic).
        self._early = EarlyWarning() if settings.early_warning else None
        # Rule state per partition: a revoked partition's state is dropped, an assigned one's is
        # rebuilt by replay, so N detectors never judge a device on stale state.
        self._engines: dict[int, RuleEngine] = {}
        # The offset after the last record handled, per partition: caught up when it reaches the
        # partition's high watermark.
        self._positions: dict[int, int] = {}
        # Per partition: the registered devices that never sent a message (see state_never).
        self._never: dict[int, NeverConnected] = {}
        # Batches and wall-clock ticks take turns, so a tick never sees half a batch.
        self._turn = asyncio.Lock()
        self.stats = DetectorStats()

    async def _prepare(self) -> None:
        # What registration checks (the API may not import the profiles): published at every start,
        # so a deployment's profiles and the API's refusals never disagree for long.
        async with self._pool.connection() as conn, conn.transaction():
            await publish_profiles(conn, registration_catalogue(self._rulebook.profiles))
        await self._registry.load()
        self.spawn(self._registry.refresh_forever(_REGISTRY_REFRESH_S), "registry")
        self.spawn(self._tick_forever(), "tick")
        self.spawn(self._watch_forever(), "watch")

    async def partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        for tp in revoked:
            self._engines.pop(tp.partition, None)
            self._positions.pop(tp.partition, None)
            self._never.pop(tp.partition, None)

    async def partitions_assigned(self, consumer: AIOKafkaConsumer, assigned: set[TopicPartition]) -> None:
        """Rebuild rule state by re-reading the replay window of each assigned partition. A crash
        or a rebalance then neither misses an episode that was under way nor its clearing; what
        the replay re-emits has the same deterministic ids, which the alert store absorbs."""
        for tp in assigned:
            self._engines.pop(tp.partition, None)
            self._positions.pop(tp.partition, None)
        window_ms = int(self._settings.detector_replay_window_s * 1000)
        for tp in assigned:  # what the replay below re-reads is this partition's known history
            self._never[tp.partition] = NeverConnected(self._rulebook, now_ms() - window_ms)
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
        """The registered device when the registry's cache had no fresh answer (`handle` asks the
        cache first, without a task or a timer): reloading the registry for a newly registered one
        (at most once a second); if the database is unreachable, the cached registry is used."""
        try:
            return await asyncio.wait_for(self._registry.lookup(device_id), _REGISTRY_TIMEOUT_S)
        except Exception as exc:
            log.warning("device registry unavailable (%s); using the cached registry", exc)
            return self._registry.get(device_id)

    def _engine(self, partition: int) -> RuleEngine:
        engine = self._engines.get(partition)
        if engine is None:
            engine = self._engines[partition] = RuleEngine(self._rulebook)
        return engine

    async def _send(self, violations: list[Violation], sends: list[Awaitable[RecordMetadata]]) -> None:
        if violations:
            _VIOLATIONS.inc(len(violations))
        for violation in violations:
            self.stats.violations += 1
            sends.append(
                await self.producer.send(VIOLATIONS, encode(violation), key=violation.source_id.encode())
            )

    async def handle(self, records: Sequence[Record]) -> None:
        async with self._turn:
            started = time.perf_counter()
            stats = self.stats
            before = (stats.readings, stats.events, stats.statuses, stats.dead_lettered)
            sends: list[Awaitable[RecordMetadata]] = []
            touched: set[int] = set()
            # The per-message path, hoisted: this loop runs for every reading of every device.
            positions, profiles, registry = self._positions, self._rulebook.profiles, self._registry
            engines, never_by_partition, early = self._engines, self._never, self._early
            found: list[Violation]
            for record in records:
                partition = record.partition
                positions[partition] = record.offset + 1
                try:
                    message = decode_device_message(record.value or b"")
                except InvalidMessage as exc:
                    stats.dead_lettered += 1
                    sends.append(await self.dead_letter(record, exc.reason, exc.detail))
                    continue
                if message.profile not in profiles:
                    # Never judged, so never silent: the device's readings stay on record with why.
                    stats.dead_lettered += 1
                    detail = unknown_profile_detail(message.device_id, message.profile, profiles)
                    sends.append(await self.dead_letter(record, "unknown_profile", detail))
                    continue
                kind = type(message)
                if kind is Telemetry:
                    stats.readings += 1
                elif kind is DeviceEvent:
                    stats.events += 1
                else:
                    stats.statuses += 1
                # The registry's cache answers without a task or a timer; only a miss awaits.
                device = registry.fresh(message.device_id)
                if device is None:
                    device = await self._device(message.device_id)
                engine = engines.get(partition)
                if engine is None:
                    engine = self._engine(partition)
                touched.add(partition)
                never = never_by_partition.get(partition)
                if never is not None and len(never):  # a never-connected device's first message
                    await self._send(never.connected(message.device_id, message.received_at), sends)
                late = engine.stats.late
                found = engine.feed(message, device)
                if found:
                    await self._send(found, sends)
                if engine.stats.late > late:  # the engine left it alone (see _count_late)
                    self._count_late(message)
                if early is not None:
                    found = early.warnings(message, device)
                    if found:
                        await self._send(found, sends)
            # Timers the batch's own messages ran past (another device's heartbeat, a door).
            for partition in touched:
                engine = engines[partition]
                await self._send(engine.tick(engine.watermark), sends)
            self._measure(started, before)
            # Every violation and dead letter of the batch must be on the broker before the
            # offsets move on.
            if sends:
                await asyncio.gather(*sends)

    def _count_late(self, message: Telemetry | DeviceEvent | DeviceStatus) -> None:
        """One more late message: the rules judge a device's messages in the order of its own clock
        and ignore one stamped before its newest (see the README's device contract)."""
        self.stats.late += 1
        _LATE["event" if isinstance(message, DeviceEvent) else "telemetry"].inc()

    def _measure(self, started: float, before: tuple[int, int, int, int]) -> None:
        """The batch's share of the Prometheus metrics: its rule time and its messages by kind,
        from the differences of the plain counters (the hot loop touches only those)."""
        metrics.telemetry_rule_seconds.observe(time.perf_counter() - started)
        s = self.stats
        for child, now, then in zip(
            (_READINGS, _EVENTS, _STATUSES, _INVALID),
            (s.readings, s.events, s.statuses, s.dead_lettered),
            before,
            strict=True,
        ):
            if now > then:
                child.inc(now - then)

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(_TICK_S)
            try:
                await self.tick_quiet_partitions()
            except KafkaError as exc:
                if not (exc.retriable or isinstance(exc, KafkaTimeoutError)):
                    raise
                # What the tick raised may not have reached the broker, but the engine counts it
                # as emitted: rebuild the state so that it is emitted again.
                log.warning("Kafka unavailable while sending timer violations (%r); rebuilding state", exc)
                async with self._turn:
                    await self.rewind()

    async def tick_quiet_partitions(self, now: int | None = None) -> int:
        """Tick every caught-up partition at the wall clock (`now`, for tests); a partition still
        reading its backlog is ticked by its own messages instead, since the wall clock would find
        devices offline whose messages are merely not read yet. Returns the violations sent."""
        consumer = self._consumer
        if consumer is None:
            return 0
        async with self._turn:
            wall = (now_ms() if now is None else now) - _TICK_GRACE_MS
            sends: list[Awaitable[RecordMetadata]] = []
            for tp in consumer.assignment():
                engine = self._engines.get(tp.partition)
                if engine is None:
                    continue
                try:
                    high = consumer.highwater(tp)
                except (AssertionError, KafkaError):  # revoked meanwhile
                    continue
                if high is None or self._positions.get(tp.partition, 0) < high:
                    continue
                await self._send(engine.tick(max(wall, engine.watermark)), sends)
            if sends:
                await asyncio.gather(*sends)
            return len(sends)

    async def _watch_forever(self) -> None:
        while True:
            await asyncio.sleep(_REOPEN_POLL_S)
            try:
                await self.reopen_closed()
                await self.flag_never_connected()
            except psycopg.Error as exc:  # the database is away: the next poll finds the same alerts
                log.warning("could not read closed alerts or new devices (%s)", exc)
            except KafkaError as exc:
                if not (exc.retriable or isinstance(exc, KafkaTimeoutError)):
                    raise
                # As for a tick: the engine holds the new ids already; rebuild so they are sent again.
                log.warning("Kafka unavailable while raising a condition again (%r); rebuilding state", exc)
                async with self._turn:
                    await self.rewind()

    async def reopen_closed(self) -> int:
        """Raise again, as a new alert, every episode still under way whose alert was closed or
        dismissed (see `detectors.rules.state_reopen`). Returns the violations sent."""
        if not self._engines:
            return 0
        async with self._pool.connection() as conn:
            cur = await conn.execute(_CLOSED_WHILE_ACTIVE, (self._settings.detector_replay_window_s,))
            closed = [
                ClosedAlert(device, code, status, int(at.timestamp() * 1000), frozenset(ids))
                for device, code, status, at, ids in await cur.fetchall()
            ]
        if not closed:
            return 0
        async with self._turn:
            sends: list[Awaitable[RecordMetadata]] = []
            for engine in list(self._engines.values()):
                await self._send(reopen(engine, closed), sends)
            if sends:
                await asyncio.gather(*sends)
            return len(sends)

    async def flag_never_connected(self, now: int | None = None) -> int:
        """DEVICE_OFFLINE for the devices of every caught-up partition that were registered more
        than their heartbeat ago and have sent nothing since (`now`, for tests). Returns the
        violations sent."""
        consumer = self._consumer
        if consumer is None or not self._never:
            return 0
        since = min(tracker.since for tracker in self._never.values())
        async with self._pool.connection() as conn:
            cur = await conn.execute(_REGISTERED_SINCE, (datetime.fromtimestamp(since / 1000, tz=UTC),))
            rows = await cur.fetchall()
        partitions = sorted(consumer.partitions_for_topic(TELEMETRY) or ())
        if not rows or not partitions:
            return 0
        mine: dict[int, list[Registered]] = {}
        for device, enterprise, site, profile, attributes, created in rows:
            registered = Registered(
                device, enterprise, site, profile, attributes or {}, int(created.timestamp() * 1000)
            )
            mine.setdefault(_PARTITION_OF(device.encode(), partitions, partitions), []).append(registered)
        async with self._turn:
            wall = (now_ms() if now is None else now) - _TICK_GRACE_MS
            sends: list[Awaitable[RecordMetadata]] = []
            for tp in consumer.assignment():
                tracker, devices = self._never.get(tp.partition), mine.get(tp.partition)
                try:
                    high = consumer.highwater(tp)
                except (AssertionError, KafkaError):  # revoked meanwhile
                    continue
                # As for a tick: a partition still reading its backlog may hold the first message.
                if (
                    tracker is None
                    or not devices
                    or high is None
                    or self._positions.get(tp.partition, 0) < high
                ):
                    continue
                await self._send(tracker.check(self._engine(tp.partition), devices, wall), sends)
            if sends:
                await asyncio.gather(*sends)
            return len(sends)
