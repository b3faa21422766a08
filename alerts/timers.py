"""Deadlines fire from the database, not from process memory.

Every alerts service instance runs `DeadlineTimer`, which scans for alerts past their deadline
that still wait on the enterprise and escalates them. The rows are claimed with
`FOR UPDATE SKIP LOCKED`, so several instances share the work without firing an alert twice, and
a restart loses nothing: the deadline is a column, not a timer in a process.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from alerts.lifecycle import AWAITING_ENTERPRISE, escalate
from alerts.policy import Policy

log = logging.getLogger(__name__)

# Alerts escalated per transaction: small enough that a scan after a long outage commits steadily
# instead of holding hundreds of row locks, large enough that a backlog clears in a few passes.
_BATCH = 50
# A follow-up visit not recorded this long after it was due is marked missed, for the supervisor.
VISIT_GRACE = timedelta(days=7)


async def fire_due(conn: AsyncConnection[Any], policy: Policy, *, limit: int = _BATCH) -> list[str]:
    """Escalate up to `limit` alerts whose deadline has passed; return their ids. Call it in a
    transaction: the claimed rows stay locked until it commits."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT *, now() AS now FROM alerts WHERE status = ANY(%s) AND deadline <= now()"
            " ORDER BY deadline LIMIT %s FOR UPDATE SKIP LOCKED",
            (sorted(AWAITING_ENTERPRISE), limit),
        )
        due = await cur.fetchall()
    for alert in due:
        lost = " (first-offence leniency forfeited)" if alert["leniency"] == "first_offence" else ""
        await escalate(
            conn, alert, actor="timer", policy=policy, penalty=True,
            reason=f"rectification deadline {alert['deadline']:%Y-%m-%d %H:%M %Z} passed{lost}",
        )  # fmt: skip
    await conn.execute(
        "UPDATE follow_up_visits SET status = 'missed' WHERE status = 'scheduled' AND due_at < now() - %s",
        (VISIT_GRACE,),
    )
    return [a["alert_id"] for a in due]


class DeadlineTimer:
    """Runs `fire_due` every `interval_s` until cancelled; a database outage is waited out."""

    def __init__(self, pool: AsyncConnectionPool[Any], policy: Policy, interval_s: float) -> None:
        self._pool = pool
        self._policy = policy
        self._interval_s = interval_s
        self.escalated = 0

    async def run_forever(self) -> None:
        while True:
            try:
                while True:  # drain a backlog before sleeping
                    async with self._pool.connection() as conn, conn.transaction():
                        fired = await fire_due(conn, self._policy)
                    self.escalated += len(fired)
                    if fired:
                        log.info("escalated %d alert(s) past their deadline", len(fired))
                    if len(fired) < _BATCH:
                        break
            except psycopg.OperationalError as exc:
                log.warning("deadline scan could not reach the database (%s); retrying", exc)
            except Exception:  # one bad row must not stop the timer for every other alert
                log.exception("deadline scan failed; retrying")
            await asyncio.sleep(self._interval_s)
