"""The compliance score on alerts seeded straight into the real PostgreSQL: exact numbers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from alerts.compliance import compliance

UNTIL = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)


class Alerts:
    def __init__(self, pool: Any, uid: str) -> None:
        self.pool, self.uid, self.n = pool, uid, 0

    @property
    def enterprise(self) -> str:
        return f"ent-{self.uid}"

    async def add(
        self,
        severity: str,
        status: str,
        *,
        created: datetime,
        deadline: datetime,
        rectified: datetime | None = None,
        penalty: bool = False,
        leniency: str = "not_eligible",
        disposition: str | None = None,
        enterprise: str | None = None,
        escalated: datetime | None = None,
    ) -> None:
        self.n += 1
        alert_id = f"c-{self.uid}-{self.n}"
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO alerts (alert_id, code, enterprise_id, site_id, source_kind, source_id, status,"
                " severity, tier, summary, detector, window_start, first_seen, last_seen, deadline,"
                " created_at, updated_at, leniency, penalty_case, disposition, rectified_at, closed_at,"
                " escalated_at)"
                " VALUES (%s, 'KITCHEN_NO_MASK', %s, %s, 'camera', %s, %s, %s, 2, 'seeded', 'test',"
                " %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    alert_id, enterprise or self.enterprise, f"site-{self.uid}", alert_id, status,
                    severity, created, created, created, deadline, created, created, leniency, penalty,
                    disposition, rectified, created + DAY if status in ("closed", "dismissed") else None,
                    escalated if escalated is not None else created if status == "escalated" else None,
                ),
            )  # fmt: skip


@pytest.fixture
def alerts(pool: Any, uid: str) -> Alerts:
    return Alerts(pool, uid)


async def score(pool: Any, enterprise: str, **kwargs: Any):
    async with pool.connection() as conn:
        return await compliance(conn, enterprise, until=UNTIL, **kwargs)


async def test_the_formula_on_a_year_of_alerts(pool, alerts: Alerts) -> None:
    t = UNTIL - 100 * DAY
    # minor, rectified by the deadline and accepted: 4 points, 2 back
    await alerts.add(
        "minor", "closed", created=t, deadline=t + DAY, rectified=t + HOUR, disposition="warning"
    )
    # major, rectified late, so a penalty case: 8 + 5 + 3
    await alerts.add(
        "major", "closed", created=t, deadline=t + DAY, rectified=t + 2 * DAY, penalty=True,
        disposition="penalty",
    )  # fmt: skip
    # critical repeat offence, escalated at once, deadline not yet due: 12 + 5
    await alerts.add(
        "critical", "escalated", created=UNTIL - DAY, deadline=UNTIL + DAY, penalty=True, leniency="repeat"
    )
    # major, still open past its deadline (the timer has not fired yet): 8 + 3
    await alerts.add("major", "open", created=t, deadline=t + DAY)
    # minor, submitted on time, waiting for the bureau: unconfirmed, so nothing yet
    await alerts.add("minor", "rectification_submitted", created=t, deadline=t + DAY, rectified=t + HOUR)
    # rejected: the earlier submission was on time, but the new deadline has passed unanswered: 4 + 3
    await alerts.add("minor", "rejected", created=t, deadline=t + 3 * DAY, rectified=t + HOUR)
    # never counted: a false alarm, an alert outside the window (and one at its open end), another's
    await alerts.add("critical", "dismissed", created=t, deadline=t + DAY, disposition="false_alarm")
    await alerts.add("critical", "open", created=UNTIL - 366 * DAY, deadline=UNTIL - 365 * DAY)
    await alerts.add("critical", "open", created=UNTIL, deadline=UNTIL + DAY)
    await alerts.add("critical", "open", created=t, deadline=t + DAY, enterprise=f"other-{alerts.uid}")

    c = await score(pool, alerts.enterprise)

    assert (c.since, c.until, c.window_days) == (UNTIL - 365 * DAY, UNTIL, 365)
    assert c.violations == 5 and c.false_alarms == 1 and c.unconfirmed == 1 and c.still_open == 3
    assert c.by_severity == {"critical": 1, "major": 2, "minor": 2}
    assert (c.penalty_cases, c.repeat_offences, c.missed_deadlines, c.rectified_on_time) == (2, 1, 3, 1)
    assert c.on_time_rate == pytest.approx(1 / 4)
    assert c.severity_points == 4 + 8 + 12 + 8 + 4 == 36
    assert c.penalty_points == 10 and c.missed_deadline_points == 9 and c.deductions == 55
    assert c.on_time_credit == 2
    assert c.score == 100 - 55 + 2 == 47


async def test_no_violations_scores_100_and_no_rate(pool, alerts: Alerts) -> None:
    t = UNTIL - 10 * DAY
    await alerts.add("critical", "dismissed", created=t, deadline=t + DAY, disposition="false_alarm")
    c = await score(pool, alerts.enterprise)
    assert c.score == 100 and c.violations == 0 and c.false_alarms == 1
    assert c.on_time_rate is None and c.by_severity == {} and c.deductions == 0


async def test_only_on_time_and_accepted_rectifications_earn_credit(pool, alerts: Alerts) -> None:
    t = UNTIL - 10 * DAY
    for severity in ("info", "minor", "major", "critical"):
        await alerts.add(
            severity, "closed", created=t, deadline=t + DAY, rectified=t + DAY, disposition="corrected"
        )  # rectified exactly at the deadline: on time
    c = await score(pool, alerts.enterprise)
    assert c.severity_points == 2 + 4 + 8 + 12 and c.on_time_credit == 1 + 2 + 4 + 6
    assert c.score == 100 - 26 + 13 == 87 and c.on_time_rate == 1.0 and c.still_open == 0


async def test_the_window_and_floor(pool, alerts: Alerts) -> None:
    t = UNTIL - 40 * DAY
    for _ in range(6):  # 6 * (12 + 5 + 3) = 120 points: the score stops at 0
        await alerts.add("critical", "escalated", created=t, deadline=t + DAY, penalty=True)
    await alerts.add("surprising", "escalated", created=UNTIL - DAY, deadline=UNTIL + DAY)  # counts as major
    c = await score(pool, alerts.enterprise)
    assert c.deductions == 128 and c.score == 0 and c.on_time_rate == 0.0
    recent = await score(pool, alerts.enterprise, days=30)
    assert recent.violations == 1 and recent.by_severity == {"surprising": 1} and recent.score == 92
    with pytest.raises(ValueError, match="window"):
        await score(pool, alerts.enterprise, days=0)


async def test_only_confirmed_violations_count(pool, alerts: Alerts) -> None:
    """Issue 18.7: an unreviewed machine detection (however many: a camera that keeps reporting
    itself covered) and a dismissed alert never lower the score; verification, escalation and a
    missed deadline each make a detection a violation."""
    t = UNTIL - 2 * HOUR
    for status in ("open", "notified", "acknowledged", "rejected"):
        await alerts.add("critical", status, created=t, deadline=UNTIL + DAY)
    await alerts.add(
        "critical", "rectification_submitted", created=t, deadline=UNTIL + DAY, rectified=t + HOUR
    )
    await alerts.add("critical", "dismissed", created=t, deadline=UNTIL + DAY, disposition="false_alarm")
    await alerts.add("critical", "closed", created=t, deadline=UNTIL + DAY, disposition="false_alarm")
    c = await score(pool, alerts.enterprise)
    assert (c.score, c.violations, c.unconfirmed, c.false_alarms, c.deductions) == (100, 0, 5, 2, 0)
    assert c.by_severity == {} and c.still_open == 0 and c.on_time_rate is None

    # Confirmed, one way each: verified (closed, on time), escalated (and since acknowledged), and
    # an open alert whose deadline has passed.
    await alerts.add(
        "minor", "closed", created=t, deadline=UNTIL + DAY, rectified=t + HOUR, disposition="warning"
    )
    await alerts.add("minor", "acknowledged", created=t, deadline=UNTIL + DAY, escalated=t + HOUR)
    await alerts.add("minor", "open", created=UNTIL - 3 * DAY, deadline=UNTIL - DAY)
    c = await score(pool, alerts.enterprise)
    assert (c.violations, c.unconfirmed, c.false_alarms) == (3, 5, 2)
    assert c.by_severity == {"minor": 3} and c.still_open == 2
    assert (c.missed_deadlines, c.rectified_on_time) == (1, 1)
    assert c.severity_points == 12 and c.missed_deadline_points == 3 and c.on_time_credit == 2
    assert c.score == 100 - 15 + 2 == 87
