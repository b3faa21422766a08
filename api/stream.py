"""A live stream of alert changes (server-sent events) that resumes after a reconnect.

`GET /api/v1/stream` reads `vigil.alerts.v1` with a consumer of its own per client: no consumer
group (nothing to commit, no rebalance when a wall screen comes or goes), every partition
assigned by hand. Operators and supervisors see every change; an enterprise key only its own.

Each event's `id:` is the position *after* it in every partition (`0:120,1:98,2:77`). A client
that reconnects with `Last-Event-ID` (browsers' EventSource does it by itself) or, for clients that
cannot set headers, `?last_event_id=`, resumes exactly there: no change missed, none repeated. The
header wins over the query parameter, because EventSource reconnects to the same URL with the
newer id in the header. The stream opens with an id-only event carrying its starting position,
and a batch whose last changes were someone else's ends with one too, so a client's id is always
current even before its first change or when changes of other enterprises went by.

Without an id the stream starts at the end (new changes only), or at `?since=<epoch ms>`.
A position the topic no longer has (retention, or the embedded broker restarted with an empty log)
resumes at the earliest change there is. A comment `: ping` goes out every 15 s of silence
so proxies keep the connection, and the consumer is stopped as soon as the client goes away.

The credential the stream was opened with is checked again every 2 s: once its key is revoked, or
its session expires or is signed out, the stream ends (with a comment saying why), and the client's
reconnect gets the 401 that any other request would.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

import anyio
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from fastapi import APIRouter, Header, HTTPException, Query, Request, status
from starlette.applications import Starlette
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from api.auth import Authenticated, still_valid
from api.models import ErrorBody
from vigil.kafka import client_security
from vigil.topics import ALERTS

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1", tags=["stream"])

# Silence longer than this gets a comment line: proxies and load balancers commonly cut idle
# connections after 30-60 s.
HEARTBEAT_S = 15.0
# How long one fetch waits for new changes; bounds how late a heartbeat can be.
POLL_MS = 1000
# Reconnection delay the stream suggests to EventSource (the `retry:` field).
RETRY_MS = 3000
# Reaching Kafka and reading the start positions must not keep a client waiting longer.
OPEN_TIMEOUT_S = 5.0
# How often an open stream asks whether its credential still holds: the bound on how long a
# revoked key, an expired session or a signed-out one keeps receiving changes. One indexed lookup
# per stream per interval.
CREDENTIAL_CHECK_S = 2.0
# A position per partition: a few dozen characters per partition at most.
_MAX_EVENT_ID = 2000
_EVENT_ID = re.compile(
    r"(0|[1-9][0-9]{0,8}):(0|[1-9][0-9]{0,18})(?:,(0|[1-9][0-9]{0,8}):(0|[1-9][0-9]{0,18}))*"
)
_POSITION = re.compile(r"(0|[1-9][0-9]{0,8}):(0|[1-9][0-9]{0,18})")
_MAX_OFFSET = 2**63 - 1


class InvalidEventId(ValueError):
    """A Last-Event-ID this stream never issued."""


class StreamUnavailable(Exception):
    """Kafka cannot be reached, or has no alerts topic."""


def parse_event_id(value: str) -> dict[int, int]:
    """`0:120,1:98,2:77` → {0: 120, 1: 98, 2: 77}; InvalidEventId for anything else."""
    if len(value) > _MAX_EVENT_ID or not _EVENT_ID.fullmatch(value):
        raise InvalidEventId("expected partition:offset pairs, e.g. 0:120,1:98,2:77")
    positions: dict[int, int] = {}
    for part in value.split(","):
        match = _POSITION.fullmatch(part)
        assert match is not None  # the whole-value pattern already matched
        partition, offset = int(match.group(1)), int(match.group(2))
        if partition in positions:
            raise InvalidEventId(f"partition {partition} appears twice")
        if offset > _MAX_OFFSET:
            raise InvalidEventId(f"offset {offset} is out of range")
        positions[partition] = offset
    return positions


def format_event_id(positions: dict[int, int]) -> str:
    return ",".join(f"{p}:{o}" for p, o in sorted(positions.items()))


class AlertStream:
    """One client's view of `vigil.alerts.v1`: a group-less consumer on every partition."""

    def __init__(self, bootstrap: str, enterprise_id: str | None) -> None:
        self._enterprise_id = enterprise_id
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            client_id="vigil-api-stream",
            enable_auto_commit=False,
            # Only consulted for a position the log no longer has: start at what it does have.
            auto_offset_reset="earliest",
            # Alert changes are small and rare: a small prefetch per partition and per client.
            max_partition_fetch_bytes=256 * 1024,
            **client_security(),  # TLS/SASL for a secured cluster, as every other client here
        )
        self._positions: dict[int, int] = {}
        self._tps: list[TopicPartition] = []
        self._closed = False

    @property
    def positions(self) -> dict[int, int]:
        return dict(self._positions)

    async def open(self, *, resume: dict[int, int] | None = None, since_ms: int | None = None) -> None:
        """Connect and seek every partition: after `resume`, else at `since_ms`, else at the end.
        StreamUnavailable when Kafka cannot be reached in time, InvalidEventId for a partition the
        topic does not have. The consumer is stopped on any failure."""
        try:
            async with asyncio.timeout(OPEN_TIMEOUT_S):
                await self._seek(resume, since_ms)
        except InvalidEventId:
            await self.close()
            raise
        except (KafkaError, OSError, TimeoutError) as exc:
            await self.close()
            raise StreamUnavailable(f"Kafka unreachable: {type(exc).__name__}: {exc}") from exc
        except BaseException:
            await self.close()
            raise

    async def _seek(self, resume: dict[int, int] | None, since_ms: int | None) -> None:
        consumer = self._consumer
        await consumer.start()
        partitions = consumer.partitions_for_topic(ALERTS)
        if not partitions:
            await consumer.topics()  # a metadata refresh: the topic may be newer than the first one
            partitions = consumer.partitions_for_topic(ALERTS)
        if not partitions:
            raise StreamUnavailable(f"topic {ALERTS} does not exist")
        tps = [TopicPartition(ALERTS, p) for p in sorted(partitions)]
        if resume is not None and (unknown := set(resume) - partitions):
            raise InvalidEventId(f"partition {min(unknown)} does not exist")
        consumer.assign(tps)
        self._tps = tps
        begin = await consumer.beginning_offsets(tps)
        start: dict[TopicPartition, int] = {}
        if resume is not None:
            for tp in tps:
                at = resume.get(tp.partition)
                # Absent: a partition added after the id was issued, so all of it is new. Before the
                # beginning: retention removed it. Both resume at the earliest change there is. An id
                # beyond the end is not judged here (the embedded broker's end offsets lag after a
                # batch of several records): the first fetch tells, see `_check_reset`.
                start[tp] = at if at is not None and at >= begin[tp] else begin[tp]
        else:
            end = await consumer.end_offsets(tps)
            if since_ms is None:
                start = dict(end)
            else:
                # Asked after the end offsets: a partition with no change since `since` then starts
                # where the next one will go, even if one arrives between the two questions.
                found = await consumer.offsets_for_times({tp: since_ms for tp in tps})
                for tp in tps:
                    hit = found.get(tp)
                    # No change at or after `since`: the end. (The embedded broker, Tansu, answers
                    # offset 0 with timestamp -1 where Kafka answers none.)
                    start[tp] = hit.offset if hit is not None and hit.timestamp >= 0 else end[tp]
        for tp, offset in start.items():
            consumer.seek(tp, offset)
            self._positions[tp.partition] = offset

    async def _check_reset(self) -> None:
        """A position beyond the partition's end (as the last fetch reported it) means the log was
        reset: the embedded broker restarted with its log in memory, or the topic was re-created.
        All of the new log is new to the client: start it over from its beginning."""
        for tp in self._tps:
            highwater = self._consumer.highwater(tp)
            if highwater is not None and self._positions[tp.partition] > highwater:
                begin = (await self._consumer.beginning_offsets([tp]))[tp]
                log.warning(
                    "%s partition %d ends at %d, before the stream's position %d: the log was reset;"
                    " resuming at %d",
                    ALERTS, tp.partition, highwater, self._positions[tp.partition], begin,
                )  # fmt: skip
                self._consumer.seek(tp, begin)
                self._positions[tp.partition] = begin

    async def events(self, allowed: Callable[[], Awaitable[bool]] | None = None) -> AsyncIterator[bytes]:
        """The SSE byte stream, one chunk per fetched batch, until the client goes away or, every
        CREDENTIAL_CHECK_S, `allowed()` says the client's credential no longer holds."""
        sent = format_event_id(self._positions)
        yield f"retry: {RETRY_MS}\nid: {sent}\n\n".encode()
        quiet_since = next_check = time.monotonic()
        while True:
            if allowed is not None and time.monotonic() >= next_check:
                next_check = time.monotonic() + CREDENTIAL_CHECK_S
                if not await _allowed(allowed):
                    yield b": the credential is no longer valid\n\n"
                    return
            batches = await self._consumer.getmany(timeout_ms=POLL_MS, max_records=500)
            chunk: list[bytes] = []
            for tp, records in batches.items():
                for record in records:
                    self._positions[tp.partition] = record.offset + 1
                    data = self._visible(record.value)
                    if data is not None:
                        sent = format_event_id(self._positions)
                        chunk.append(b"id: %s\ndata: %s\n\n" % (sent.encode(), data))
            await self._check_reset()
            current = format_event_id(self._positions)
            if current != sent:  # the batch ended with changes this client does not see
                sent = current
                chunk.append(b"id: %s\n\n" % current.encode())
            if chunk:
                yield b"".join(chunk)
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= HEARTBEAT_S:
                yield b": ping\n\n"
                quiet_since = time.monotonic()

    def _visible(self, value: bytes | None) -> bytes | None:
        """The change as one line of JSON if this client may see it; None otherwise."""
        try:
            change: Any = orjson.loads(value or b"")
        except orjson.JSONDecodeError:
            log.warning("skipping a record on %s that is not JSON", ALERTS)
            return None
        if not isinstance(change, dict) or change.get("type") != "alert_change":
            return None
        if self._enterprise_id is not None and change.get("enterprise_id") != self._enterprise_id:
            return None
        # Re-serialised: whatever another writer put there, `data:` is exactly one line.
        return orjson.dumps(change)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # One turn of the loop first: aiokafka's group-less coordinator starts a task that, when
        # cancelled before it ever ran (a stream refused right after connecting), makes stop()
        # raise CancelledError.
        await asyncio.sleep(0)
        await self._consumer.stop()

    @property
    def closed(self) -> bool:
        return self._closed


async def _allowed(allowed: Callable[[], Awaitable[bool]]) -> bool:
    # A check that cannot be made (the database is away) ends the stream too: a credential that
    # cannot be confirmed is not served. The client resumes from its last id once it can be.
    try:
        return await allowed()
    except Exception as exc:
        log.warning("ending an alert stream: its credential could not be checked: %s", exc)
        return False


def active_streams(app: Starlette) -> set[AlertStream]:
    """The streams this app is serving now (each holds a Kafka consumer)."""
    streams: set[AlertStream] | None = getattr(app.state, "alert_streams", None)
    if streams is None:
        streams = set()
        app.state.alert_streams = streams
    return streams


class _EventStreamResponse(StreamingResponse):
    """Owns the consumer for the whole response, however it ends: client gone (the body iterator
    is cancelled), send failed, or never started at all."""

    def __init__(
        self, stream: AlertStream, streams: set[AlertStream], allowed: Callable[[], Awaitable[bool]]
    ) -> None:
        super().__init__(
            stream.events(allowed),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        self._stream, self._streams = stream, streams

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # Shielded: the stream ends by cancellation, which would cancel the stop as well.
            with anyio.CancelScope(shield=True):
                try:
                    await self._stream.close()
                except Exception:
                    log.exception("stopping an alert stream's consumer failed")
                finally:
                    self._streams.discard(self._stream)


_EVENT_STREAM_EXAMPLE = (
    "retry: 3000\nid: 0:120,1:98,2:77\n\n"
    'id: 0:121,1:98,2:77\ndata: {"alert_id":"3f2a…","enterprise_id":"ent-1","site_id":"site-1",'
    '"code":"COLD_CHAIN_FREEZER_WARM","status":"notified","change":"notified","severity":"major",'
    '"tier":2,"at":1714550400000,"summary":"Freezer at -9.5 °C","type":"alert_change","v":1}\n\n'
    ": ping\n\n"
)


@router.get(
    "/stream",
    summary="Live alert changes (server-sent events), resumable with Last-Event-ID",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "`text/event-stream`: `data:` is an AlertChange as JSON; `id:` the position to "
            "resume after it",
            "content": {
                "text/event-stream": {"schema": {"type": "string"}, "example": _EVENT_STREAM_EXAMPLE}
            },
        },
        400: {"model": ErrorBody, "description": "Last-Event-ID not issued by this stream"},
        401: {"model": ErrorBody, "description": "no valid token"},
        503: {"model": ErrorBody, "description": "Kafka not configured or unreachable"},
    },
)
async def stream_alert_changes(
    request: Request,
    principal: Authenticated,
    last_event_id_header: Annotated[
        str | None,
        Header(alias="Last-Event-ID", description="the `id:` of the last event received; resumes after it"),
    ] = None,
    last_event_id: Annotated[
        str | None,
        Query(description="the same, for clients that cannot set headers; the header wins"),
    ] = None,
    since: Annotated[
        int | None,
        Query(ge=0, description="without an id: start at changes at or after this time (epoch ms)"),
    ] = None,
) -> StreamingResponse:
    bootstrap: str | None = getattr(request.app.state, "kafka_bootstrap", None)
    if not bootstrap:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "the live stream needs Kafka: set VIGIL_KAFKA_BOOTSTRAP for the API",
        )
    # EventSource sends no header before its first id; an empty value is treated the same way.
    raw_id = (last_event_id_header or "").strip() or (last_event_id or "").strip()
    try:
        resume = parse_event_id(raw_id) if raw_id else None
    except InvalidEventId as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"invalid Last-Event-ID: {exc}") from None
    stream = AlertStream(bootstrap, principal.enterprise_id)
    try:
        await stream.open(resume=resume, since_ms=since if resume is None else None)
    except InvalidEventId as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"invalid Last-Event-ID: {exc}") from None
    except StreamUnavailable as exc:
        log.warning("alert stream unavailable: %s", exc)
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"alert stream unavailable: {exc}") from None
    streams = active_streams(request.app)
    streams.add(stream)
    return _EventStreamResponse(stream, streams, lambda: still_valid(request, principal))
