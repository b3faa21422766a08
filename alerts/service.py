"""The alerts service: `vigil.violations.v1` → PostgreSQL (alerts, audit, outbox), and the
deadline timer that escalates alerts the enterprise let lapse.

Offsets are committed only after the batch's transaction has committed. If the database is down
the batch is retried with backoff (nothing is skipped); a violation the database refuses as data
is dead-lettered alone, so one poison message cannot block the partition.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg
from aiokafka import AIOKafkaConsumer

from alerts.policy import Policy
from alerts.store import apply_violation, record_clip
from alerts.timers import DeadlineTimer
from vigil import metrics
from vigil.db import migrate
from vigil.errors import InvalidMessage
from vigil.events import Violation, decode_clip_ready, decode_violation
from vigil.kafka import consume_batches, make_consumer
from vigil.settings import Settings
from vigil.topics import CLIPS, VIOLATIONS
from vigil.worker import KafkaWorker, Record

log = logging.getLogger(__name__)

# Backoff while the database is unreachable: start fast for a blip, cap so recovery is noticed
# within seconds once it is back.
_RETRY_FIRST_S, _RETRY_MAX_S = 0.2, 5.0
# How often the alerts-by-status gauge is recounted. Prometheus scrapes every 15 s by default; the
# count is an index-only scan of the live alerts (partial index alerts_status), so a few ms.
STATUS_COUNT_INTERVAL_S = 15.0
# The statuses an alert can be in before it is closed or dismissed (the CHECK on alerts.status):
# each is reported, 0 when none is, so a status that empties does not keep its last count.
LIVE_STATUSES = ("open", "notified", "acknowledged", "rectification_submitted", "rejected", "escalated")
_COUNT_LIVE = """SELECT status, count(*) FROM alerts WHERE status NOT IN ('closed', 'dismissed')
GROUP BY status"""


@dataclass(slots=True)
class AlertStats:
    violations: int = 0
    opened: int = 0
    repeated: int = 0
    cleared: int = 0
    replayed: int = 0
    dead_lettered: int = 0


class AlertService(KafkaWorker):
    name = "alerts"
    topic = VIOLATIONS
    group_id = "vigil-alerts"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.stats = AlertStats()
        self.policy = Policy.from_settings(settings)
        self.timer = DeadlineTimer(self._pool, self.policy, settings.timer_interval_s)
        self._clips: AIOKafkaConsumer | None = None
        self.clips_recorded = 0

    async def _prepare(self) -> None:
        assert self._settings.database_url
        await migrate(self._settings.database_url)
        # Deadlines are columns, so every instance can scan them; SKIP LOCKED keeps them apart.
        self.spawn(self.timer.run_forever(), "deadline-timer")
        self.spawn(self._count_statuses_forever(), "status-gauge")
        # Event clips made by camera ingest (ingest/camera/clips.py), recorded on their alerts.
        assert self._settings.kafka_bootstrap
        self._clips = make_consumer(self._settings.kafka_bootstrap, f"{self.group_id}-clips", CLIPS)
        await self._clips.start()
        self.spawn(consume_batches(self._clips, self._record_clips), "clips")

    async def _stop(self) -> None:
        if self._clips is not None:
            await self._clips.stop()
        await super()._stop()

    async def _record_clips(self, records: Sequence[Record]) -> None:
        """Record each clip (or its failure) on its alert; a clip whose violation is not stored
        (dead-lettered) is dropped with a log line: there is no alert to put it on."""
        for record in records:
            try:
                clip = decode_clip_ready(record.value or b"")
            except InvalidMessage as exc:
                await self._dead_letter(record, exc.reason, str(exc))
                continue
            delay = _RETRY_FIRST_S
            while True:
                try:
                    async with self._pool.connection() as conn, conn.transaction():
                        alert_id = await record_clip(conn, clip)
                    break
                except psycopg.OperationalError as exc:  # the database is away: wait, as for violations
                    log.warning("database unavailable (%s); retrying the clip in %.1fs", exc, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, _RETRY_MAX_S)
            if alert_id is None:
                log.info("clip for violation %s: no alert to record it on (or a replay)", clip.violation_id)
            else:
                self.clips_recorded += 1

    async def count_statuses(self) -> dict[str, int]:
        """Count the live alerts by status into the `vigil_alerts` gauge; returns the counts.

        Terminal statuses (closed, dismissed) are left out: they only grow, and counting them would
        scan the whole table every time; their rate is in vigil_alerts_violations and the API's
        statistics."""
        async with self._pool.connection() as conn:
            rows = await (await conn.execute(_COUNT_LIVE)).fetchall()
        counts = dict.fromkeys(LIVE_STATUSES, 0) | {str(status): int(n) for status, n in rows}
        for status, n in counts.items():
            metrics.alerts_by_status.labels(status).set(n)
        return counts

    async def _count_statuses_forever(self) -> None:
        while True:
            try:
                await self.count_statuses()
            except psycopg.Error as exc:  # the database is away: the gauge keeps its last value
                log.warning("could not count alerts by status (%s)", exc)
            await asyncio.sleep(STATUS_COUNT_INTERVAL_S)

    async def handle(self, records: Sequence[Record]) -> None:
        violations: list[tuple[Record, Violation]] = []
        for record in records:
            try:
                violations.append((record, decode_violation(record.value or b"")))
            except InvalidMessage as exc:
                await self._dead_letter(record, exc.reason, str(exc))
        if not violations:
            return
        delay = _RETRY_FIRST_S
        while True:
            try:
                await self._apply_all(violations)
                return
            except psycopg.OperationalError as exc:
                log.warning("database unavailable (%s); retrying the batch in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX_S)
            except Exception as exc:  # a data error somewhere in the batch: find it alone
                log.warning("batch refused (%r); applying one by one", exc)
                await self._apply_one_by_one(violations)
                return

    async def _apply_all(self, violations: Sequence[tuple[Record, Violation]]) -> None:
        async with self._pool.connection() as conn, conn.transaction():
            changes = [await apply_violation(conn, v, self.policy) for _, v in violations]
        self._count(changes)

    async def _apply_one_by_one(self, violations: Sequence[tuple[Record, Violation]]) -> None:
        for record, violation in violations:
            try:
                async with self._pool.connection() as conn, conn.transaction():
                    change = await apply_violation(conn, violation, self.policy)
                self._count([change])
            except psycopg.OperationalError:
                raise  # not the message's fault: let the batch be retried after a restart
            except Exception as exc:  # the database or the store refused this one message
                log.warning("violation %s refused: %r", violation.violation_id, exc)
                await self._dead_letter(record, "refused_by_store", f"{type(exc).__name__}: {exc}")

    def _count(self, changes: Sequence[str | None]) -> None:
        outcomes: dict[str, int] = {}
        for change in changes:
            outcome = "replayed" if change is None else change
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        self.stats.violations += len(changes)
        for outcome, n in outcomes.items():
            setattr(self.stats, outcome, getattr(self.stats, outcome) + n)
            metrics.alert_violations.labels(outcome).inc(n)

    async def _dead_letter(self, record: Record, reason: str, detail: str) -> None:
        self.stats.dead_lettered += 1
        metrics.alert_violations.labels("dead_lettered").inc()
        await (await self.dead_letter(record, reason, detail))  # on the broker before the commit
