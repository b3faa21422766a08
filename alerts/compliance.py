"""An enterprise's compliance score: one number from 0 to 100 over a window, and how it was reached.

The window is the alerts the enterprise had *created* in `[until - days, until)` (365 days by
default). Only *confirmed* violations count: an alert the bureau verified (closed, not as a false
alarm), escalated (now or earlier: `escalated_at`), or whose rectification deadline was missed (see
below). A machine detection nobody has reviewed yet, within its deadline, is reported as
`unconfirmed` and costs nothing until one of those happens: the camera-tamper and vision models
are not always right, and a score that falls on an unreviewed guess is not a fair record. Alerts
dismissed as false alarms (status `dismissed`, or disposition `false_alarm`) never count: they are
reported, as `false_alarms`.

    score = max(0, 100 - deductions + credits)

Deductions, per violation:

- **severity**: info 2, minor 4, major 8, critical 12 points (any other severity counts as major);
- **penalty case**: 5 more points when the alert was referred for a penalty case: a repeat offence
  (within the leniency look-back), or a rectification deadline missed;
- **missed deadline**: 3 more points when the deadline was missed: the rectification that was
  accepted, or is waiting for the bureau, was submitted after the deadline; or nothing acceptable
  has been submitted and the deadline has passed (as of `until`). A missed deadline usually makes
  a penalty case too (the timer escalates it, or verification finds it late), and costs both.

Credits, per violation:

- **on-time rectification**: half its severity points back (info 1, minor 2, major 4, critical 6)
  when the bureau accepted a rectification submitted by the deadline (the alert closed, not late).

A credit is never more than the violation's own severity points, so the score never exceeds 100; an
enterprise with no violations in the window scores 100. Alongside the score come its components
(counts per severity, penalty cases, repeat offences, missed deadlines, on-time rectifications,
still-open violations and the points each part contributed), so the number can be checked by hand.

`on_time_rate` is rectified-on-time / (rectified-on-time + missed-deadlines): of the violations whose
deadline is settled (met by an accepted rectification, or missed), the share that met it. It is
None when none is settled yet: "no data" must not read as perfect, or as failing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import AsyncConnection

DEFAULT_WINDOW_DAYS = 365
MAX_WINDOW_DAYS = 5 * 365 + 2  # five calendar years, leap days included

SEVERITY_POINTS: dict[str, int] = {"info": 2, "minor": 4, "major": 8, "critical": 12}
UNKNOWN_SEVERITY_POINTS = SEVERITY_POINTS["major"]
PENALTY_CASE_POINTS = 5
MISSED_DEADLINE_POINTS = 3

FORMULA = (
    "score = max(0, 100 - deductions + credits). Per confirmed violation (verified, escalated or past its"
    " rectification deadline; unreviewed detections and false alarms never count): severity"
    " info 2, minor 4, major 8, critical 12 points; +5 for a penalty case (a repeat offence or a"
    " missed deadline); +3 for a missed rectification deadline. Credit: half the severity points"
    " back for a rectification submitted by its deadline and accepted."
)

# One row per severity. `fa`: a false alarm; `late`: the deadline was missed. An alert waiting on the
# bureau or closed is judged by when its latest rectification came; any other (still owed by the
# enterprise, escalated) by whether its deadline has passed as of `until`.
_QUERY = """
SELECT severity,
       count(*) FILTER (WHERE ok) AS violations,
       count(*) FILTER (WHERE fa) AS false_alarms,
       count(*) FILTER (WHERE NOT fa AND NOT ok) AS unconfirmed,
       count(*) FILTER (WHERE ok AND status <> 'closed') AS still_open,
       count(*) FILTER (WHERE ok AND penalty_case) AS penalty_cases,
       count(*) FILTER (WHERE ok AND leniency = 'repeat') AS repeat_offences,
       count(*) FILTER (WHERE ok AND late) AS missed_deadlines,
       count(*) FILTER (WHERE ok AND NOT late AND status = 'closed' AND rectified_at IS NOT NULL)
           AS rectified_on_time
FROM (
    -- ok: a confirmed violation (verified, escalated now or before, or its deadline missed).
    SELECT *, NOT fa AND (status IN ('closed', 'escalated') OR escalated_at IS NOT NULL OR late) AS ok
    FROM (
        SELECT severity, status, penalty_case, leniency, rectified_at, escalated_at,
               status = 'dismissed' OR COALESCE(disposition = 'false_alarm', false) AS fa,
               COALESCE(CASE WHEN status IN ('rectification_submitted', 'closed') THEN rectified_at > deadline
                             ELSE deadline <= %(until)s END, false) AS late
        FROM alerts
        WHERE enterprise_id = %(enterprise_id)s AND created_at >= %(since)s AND created_at < %(until)s
    ) b
) a
GROUP BY severity
ORDER BY severity
"""


@dataclass(slots=True)
class Compliance:
    enterprise_id: str
    since: datetime
    until: datetime
    window_days: int
    score: int
    violations: int = 0
    false_alarms: int = 0
    unconfirmed: int = 0
    still_open: int = 0
    by_severity: dict[str, int] = field(default_factory=dict)
    penalty_cases: int = 0
    repeat_offences: int = 0
    missed_deadlines: int = 0
    rectified_on_time: int = 0
    on_time_rate: float | None = None
    severity_points: int = 0
    penalty_points: int = 0
    missed_deadline_points: int = 0
    on_time_credit: int = 0

    @property
    def deductions(self) -> int:
        return self.severity_points + self.penalty_points + self.missed_deadline_points


def severity_points(severity: str) -> int:
    return SEVERITY_POINTS.get(severity, UNKNOWN_SEVERITY_POINTS)


async def compliance(
    conn: AsyncConnection[Any],
    enterprise_id: str,
    *,
    days: int = DEFAULT_WINDOW_DAYS,
    until: datetime | None = None,
) -> Compliance:
    """The score of `enterprise_id` over the `days` before `until` (default: now), as documented above."""
    if not 1 <= days <= MAX_WINDOW_DAYS:
        raise ValueError(f"the window must be 1 to {MAX_WINDOW_DAYS} days, got {days}")
    end = datetime.now(UTC) if until is None else until if until.tzinfo else until.replace(tzinfo=UTC)
    start = end - timedelta(days=days)
    cur = await conn.execute(_QUERY, {"enterprise_id": enterprise_id, "since": start, "until": end})
    result = Compliance(enterprise_id=enterprise_id, since=start, until=end, window_days=days, score=100)
    for row in await cur.fetchall():
        severity, violations, false_alarms, unconfirmed, still_open, penalty, repeat, missed, on_time = row
        points = severity_points(severity)
        result.false_alarms += false_alarms
        result.unconfirmed += unconfirmed
        if violations == 0:
            continue
        result.violations += violations
        result.by_severity[severity] = violations
        result.still_open += still_open
        result.penalty_cases += penalty
        result.repeat_offences += repeat
        result.missed_deadlines += missed
        result.rectified_on_time += on_time
        result.severity_points += points * violations
        result.penalty_points += PENALTY_CASE_POINTS * penalty
        result.missed_deadline_points += MISSED_DEADLINE_POINTS * missed
        result.on_time_credit += (points // 2) * on_time
    settled = result.rectified_on_time + result.missed_deadlines
    result.on_time_rate = result.rectified_on_time / settled if settled else None
    result.score = max(0, 100 - result.deductions + result.on_time_credit)
    return result
