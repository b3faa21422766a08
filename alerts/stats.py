"""Supervision statistics the bureau reports upward, computed from the alerts table in one query.

Every alert is attributed to the period (UTC) of its `created_at`, and to the district of its site
at the time of the query. Definitions, per group:

- alerts: every alert created in the range;
- violations: alerts not dismissed (a dismissed alert is a false alarm, never an offence);
- warnings: disposition 'warning' (a first offence corrected in time);
- penalty_cases: violations flagged for a penalty case;
- rectified: closed and not a false alarm (a closed alert without a disposition counts);
- rectification_rate: rectified / violations;
- mean_hours_to_rectify: mean of closed_at - created_at over the rectified alerts that have a
  closed_at;
- repeat_offences: violations whose leniency is 'repeat'; repeat_offence_rate: / violations;
- false_alarms: dismissed alerts; false_alarm_rate: false_alarms / alerts.

A rate whose denominator is zero, and a mean over nothing, is None rather than 0: "no data" must
not read as "perfect" (or "terrible") in a report.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from psycopg import AsyncConnection, sql

GroupBy = Literal["period", "district", "enterprise", "code"]
# Printed reports also count by tier, and need the whole range as one row ("all").
ReportGroupBy = Literal[GroupBy, "tier", "all"]
Period = Literal["day", "week", "month"]
FalseAlarmBy = Literal["source", "detector"]

UNASSIGNED_DISTRICT = "unassigned"  # the key for alerts whose site has no district

# The only fragments a query is composed from; the user's choices pick among them.
_GROUP_KEYS: dict[str, sql.Composable] = {
    # ISO date of the period start. `date_trunc('week', ...)` starts weeks on Monday.
    "period": sql.SQL("to_char(date_trunc(%(unit)s, a.created_at AT TIME ZONE 'UTC'), 'YYYY-MM-DD')"),
    "district": sql.SQL("COALESCE(s.district, {})").format(sql.Literal(UNASSIGNED_DISTRICT)),
    "enterprise": sql.SQL("a.enterprise_id"),
    "code": sql.SQL("a.code"),
    "tier": sql.SQL("a.tier::text"),
    "all": sql.SQL("'all'"),
}
_PERIOD_UNITS: dict[str, str] = {"day": "day", "week": "week", "month": "month"}
_FILTERS: dict[str, sql.Composable] = {
    "enterprise_id": sql.SQL("a.enterprise_id = %(enterprise_id)s"),
    # Matches the keys this module reports, so a district row can be drilled into, 'unassigned' too.
    "district": sql.SQL("COALESCE(s.district, {}) = %(district)s").format(sql.Literal(UNASSIGNED_DISTRICT)),
    "code": sql.SQL("a.code = %(code)s"),
}
_FALSE_ALARM_KEYS: dict[str, sql.Composable] = {
    "source": sql.SQL("a.source_kind || ':' || a.source_id"),
    "detector": sql.SQL("a.detector"),
}

# "Violation" is `status <> 'dismissed'`; "rectified" is
# `status = 'closed' AND disposition IS DISTINCT FROM 'false_alarm'` (spelled out, not interpolated).
_STATS = sql.SQL(
    "SELECT {key} AS key,"
    " count(*),"
    " count(*) FILTER (WHERE a.status <> 'dismissed'),"
    " count(*) FILTER (WHERE a.disposition = 'warning'),"
    " count(*) FILTER (WHERE a.penalty_case AND a.status <> 'dismissed'),"
    " count(*) FILTER (WHERE a.status = 'closed' AND a.disposition IS DISTINCT FROM 'false_alarm'),"
    " (avg(extract(epoch FROM a.closed_at - a.created_at)) FILTER ("
    "    WHERE a.status = 'closed' AND a.disposition IS DISTINCT FROM 'false_alarm'"
    "    AND a.closed_at IS NOT NULL) / 3600)::float8,"
    " count(*) FILTER (WHERE a.leniency = 'repeat' AND a.status <> 'dismissed'),"
    " count(*) FILTER (WHERE a.status = 'dismissed')"
    " FROM alerts a LEFT JOIN sites s ON s.site_id = a.site_id"
    " WHERE {where}"
    " GROUP BY 1 ORDER BY 1"
)

_FALSE_ALARMS = sql.SQL(
    "SELECT {key} AS key, count(*), count(*) FILTER (WHERE a.status = 'dismissed') AS false_alarms"
    " FROM alerts a"
    " WHERE {where}"
    " GROUP BY 1 ORDER BY false_alarms DESC, count(*) DESC, 1"
)


@dataclass(frozen=True, slots=True)
class StatsRow:
    key: str
    alerts: int
    violations: int
    warnings: int
    penalty_cases: int
    rectified: int
    rectification_rate: float | None
    mean_hours_to_rectify: float | None
    repeat_offences: int
    repeat_offence_rate: float | None
    false_alarms: int
    false_alarm_rate: float | None


@dataclass(frozen=True, slots=True)
class FalseAlarmRow:
    key: str  # 'camera:ID' / 'device:ID', or the detector (model) name
    alerts: int
    false_alarms: int
    rate: float


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def _range(since: datetime, until: datetime) -> tuple[datetime, datetime]:
    # A time without an offset is UTC, as in the API, not whatever zone the session has.
    since, until = (t if t.tzinfo is not None else t.replace(tzinfo=UTC) for t in (since, until))
    if since >= until:
        raise ValueError(f"since ({since.isoformat()}) must be before until ({until.isoformat()})")
    return since, until


async def supervision_stats(
    conn: AsyncConnection[Any],
    *,
    group_by: ReportGroupBy,
    period: Period = "month",
    since: datetime,
    until: datetime,
    enterprise_id: str | None = None,
    district: str | None = None,
    code: str | None = None,
) -> list[StatsRow]:
    """The bureau's figures for alerts created in [since, until), one row per group, ordered by key
    (chronologically for periods). Groups without alerts are absent."""
    if group_by not in _GROUP_KEYS:
        raise ValueError(f"group_by must be one of {sorted(_GROUP_KEYS)}, not {group_by!r}")
    if period not in _PERIOD_UNITS:
        raise ValueError(f"period must be one of {sorted(_PERIOD_UNITS)}, not {period!r}")
    since, until = _range(since, until)
    params: dict[str, Any] = {"since": since, "until": until, "unit": _PERIOD_UNITS[period]}
    where: list[sql.Composable] = [sql.SQL("a.created_at >= %(since)s AND a.created_at < %(until)s")]
    for name, value in (("enterprise_id", enterprise_id), ("district", district), ("code", code)):
        if value is not None:
            where.append(_FILTERS[name])
            params[name] = value
    query = _STATS.format(key=_GROUP_KEYS[group_by], where=sql.SQL(" AND ").join(where))
    cur = await conn.execute(query, params)
    rows: list[StatsRow] = []
    for (
        key,
        alerts,
        violations,
        warnings,
        penalty,
        rectified,
        mean_hours,
        repeat,
        false_alarms,
    ) in await cur.fetchall():
        rows.append(
            StatsRow(
                key=key,
                alerts=alerts,
                violations=violations,
                warnings=warnings,
                penalty_cases=penalty,
                rectified=rectified,
                rectification_rate=_ratio(rectified, violations),
                mean_hours_to_rectify=mean_hours,
                repeat_offences=repeat,
                repeat_offence_rate=_ratio(repeat, violations),
                false_alarms=false_alarms,
                false_alarm_rate=_ratio(false_alarms, alerts),
            )
        )
    return rows


async def false_alarm_stats(
    conn: AsyncConnection[Any],
    *,
    by: FalseAlarmBy,
    since: datetime,
    until: datetime,
    enterprise_id: str | None = None,
    limit: int | None = None,
) -> list[FalseAlarmRow]:
    """False alarms (dismissed alerts) per camera/device or per detector model, for alerts created
    in [since, until), most false alarms first (then most alerts, then key)."""
    if by not in _FALSE_ALARM_KEYS:
        raise ValueError(f"by must be one of {sorted(_FALSE_ALARM_KEYS)}, not {by!r}")
    since, until = _range(since, until)
    params: dict[str, Any] = {"since": since, "until": until}
    where: list[sql.Composable] = [sql.SQL("a.created_at >= %(since)s AND a.created_at < %(until)s")]
    if enterprise_id is not None:
        where.append(_FILTERS["enterprise_id"])
        params["enterprise_id"] = enterprise_id
    query = _FALSE_ALARMS.format(key=_FALSE_ALARM_KEYS[by], where=sql.SQL(" AND ").join(where))
    if limit is not None:
        query = sql.SQL("{} LIMIT %(limit)s").format(query)
        params["limit"] = limit
    cur = await conn.execute(query, params)
    # alerts >= 1 in every group, so the rate is always defined.
    return [FalseAlarmRow(key, alerts, fa, fa / alerts) for key, alerts, fa in await cur.fetchall()]
