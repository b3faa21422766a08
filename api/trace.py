"""The sensor trace of an alert: its device's readings around the time it was raised.

`GET /api/v1/alerts/{alert_id}/trace` returns, per metric, the readings of the alert's device
from `first_seen - before_s` to `coalesce(cleared_at, last_seen) + after_s`. When a metric has more
than `MAX_POINTS` readings in that window, every metric is averaged into `date_bin()` buckets of
one common width (whole seconds, chosen so no metric exceeds MAX_POINTS), each point stamped with
its bucket's start. date_bin() is core PostgreSQL, so the query is the same on a TimescaleDB
hypertable and on natively partitioned tables. The window is at most `MAX_WINDOW` long; a longer
one is cut at its end and flagged `truncated`.

Operators and supervisors see every alert's trace; an enterprise only its own alerts' (another
enterprise's alert is a 404, as if it did not exist). A camera alert has no sensor readings: it
answers 200 with `source_kind: "camera"`, `device_id: null` and empty `series`, so a client can
ask for the trace of any alert it shows (its evidence is the snapshot, see the evidence route).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, status
from psycopg import sql
from pydantic import BaseModel, ConfigDict, Field

from api.auth import Authenticated
from api.deps import ACQUIRE_TIMEOUT_S, Pool
from api.models import ErrorBody
from api.params import AlertId

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])

DEFAULT_BEFORE_S = 1800
DEFAULT_AFTER_S = 600
# Margins beyond a day are another question (a device's history), not an alert's trace.
MAX_MARGIN_S = 86_400
# A chart is a few hundred pixels wide: 2,000 points per metric is already more than it can show.
MAX_POINTS = 2000
# An alert open for weeks still gets a trace of bounded cost.
MAX_WINDOW = timedelta(days=7)

_EXAMPLE: dict[str, Any] = {
    "alert_id": "3f2a9c0d1e6b4a7f8c5d2e1b0a9f8e7d",
    "source_kind": "device",
    "device_id": "freezer-01",
    "start_ms": 1714548600000,
    "end_ms": 1714552800000,
    "bucket_ms": None,
    "truncated": False,
    "series": {
        "temperature": [[1714548600000, -18.2], [1714548610000, -18.1], [1714548620000, -12.4]],
        "door_open": [[1714548600000, 0.0], [1714548610000, 1.0]],
    },
}


# [ts_ms, value]: a pair as a two-item array (OpenAPI 3.1 tools choke on tuple schemas, prefixItems).
Point = Annotated[list[int | float], Field(min_length=2, max_length=2)]


class SensorTrace(BaseModel):
    """Readings of an alert's device around the alert, per metric."""

    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE]})

    alert_id: str
    source_kind: Literal["device", "camera"]
    device_id: str | None = Field(description="the alert's device; null for a camera alert")
    start_ms: int = Field(description="window start, epoch ms: first_seen - before_s")
    end_ms: int = Field(description="window end, epoch ms: (cleared_at or last_seen) + after_s")
    bucket_ms: int | None = Field(
        description="null: every reading as stored; otherwise each point is the average of a bucket "
        "this many ms wide, stamped at the bucket's start"
    )
    truncated: bool = Field(description=f"the window was longer than {MAX_WINDOW.days} days and was cut")
    series: dict[str, list[Point]] = Field(
        description="metric → [[ts_ms, value], …] in time order; empty for a camera alert"
    )


_ALERT = (
    "SELECT enterprise_id, source_kind, source_id, first_seen, COALESCE(cleared_at, last_seen)"
    " FROM alerts WHERE alert_id = %s"
)
# Fixed fragments only, composed; every value is a parameter. The primary key (device_id, ts,
# metric) serves the range: one device, one time span.
_WHERE = sql.SQL(
    "device_id = %(device)s AND enterprise_id = %(enterprise)s AND ts >= %(start)s AND ts <= %(end)s"
)
_COUNTS = sql.SQL("SELECT metric, count(*) FROM telemetry WHERE {} GROUP BY metric").format(_WHERE)
_RAW = sql.SQL(
    "SELECT metric, (extract(epoch FROM ts) * 1000)::bigint, value FROM telemetry WHERE {}"
    " ORDER BY metric, ts"
).format(_WHERE)
_BUCKETED = sql.SQL(
    "SELECT metric, (extract(epoch FROM date_bin(%(stride)s, ts, %(start)s)) * 1000)::bigint AS bucket,"
    " avg(value) FROM telemetry WHERE {} GROUP BY metric, bucket ORDER BY metric, bucket"
).format(_WHERE)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _ms(value: datetime) -> int:
    return (value - _EPOCH) // timedelta(milliseconds=1)  # exact, where timestamp() is a float


def bucket_width(start: datetime, end: datetime, max_points: int = MAX_POINTS) -> timedelta:
    """The smallest whole-second width that puts [start, end] into at most `max_points` buckets
    (buckets start at `start`, so the count is floor((end - start) / width) + 1)."""
    span_ms = _ms(end) - _ms(start)
    width_ms = span_ms // max_points + 1  # span / width < max_points
    return timedelta(seconds=-(-width_ms // 1000))


@router.get(
    "/{alert_id}/trace",
    responses={
        401: {"model": ErrorBody, "description": "no valid token"},
        404: {"model": ErrorBody, "description": "no such alert (or another enterprise's)"},
    },
    summary="The sensor readings of an alert's device around the alert",
)
async def get_trace(
    principal: Authenticated,
    pool: Pool,
    alert_id: AlertId,
    before_s: Annotated[
        int, Query(ge=0, le=MAX_MARGIN_S, description="seconds of readings before the alert was first seen")
    ] = DEFAULT_BEFORE_S,
    after_s: Annotated[
        int,
        Query(ge=0, le=MAX_MARGIN_S, description="seconds of readings after it cleared (or was last seen)"),
    ] = DEFAULT_AFTER_S,
) -> SensorTrace:
    # One snapshot: the point count that chose raw or bucketed still holds for the read.
    async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        cur = await conn.execute(_ALERT, (alert_id,))
        alert = await cur.fetchone()
        if alert is None or (principal.enterprise_id is not None and alert[0] != principal.enterprise_id):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"alert {alert_id} not found")
        enterprise, source_kind, source_id, first_seen, last = alert
        start = first_seen - timedelta(seconds=before_s)
        end = last + timedelta(seconds=after_s)
        truncated = end - start > MAX_WINDOW
        if truncated:
            end = start + MAX_WINDOW
        trace: dict[str, Any] = {
            "alert_id": alert_id,
            "source_kind": source_kind,
            "device_id": source_id if source_kind == "device" else None,
            "start_ms": _ms(start),
            "end_ms": _ms(end),
            "bucket_ms": None,
            "truncated": truncated,
            "series": {},
        }
        if source_kind != "device":
            return SensorTrace.model_validate(trace)
        params: dict[str, Any] = {"device": source_id, "enterprise": enterprise, "start": start, "end": end}
        counts = await (await conn.execute(_COUNTS, params)).fetchall()
        if counts and max(n for _, n in counts) > MAX_POINTS:
            params["stride"] = stride = bucket_width(start, end)
            trace["bucket_ms"] = int(stride.total_seconds() * 1000)
            query = _BUCKETED
        else:
            query = _RAW
        series: dict[str, list[list[int | float]]] = {}
        for metric, ts_ms, value in await (await conn.execute(query, params)).fetchall():
            series.setdefault(metric, []).append([ts_ms, float(value)])
    trace["series"] = series
    return SensorTrace.model_validate(trace)
