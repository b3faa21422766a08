"""Live view of a camera: `GET /api/v1/cameras/{camera_id}/live`, MJPEG over HTTP
(`multipart/x-mixed-replace`), at the camera's sampling rate.

The API does not know which camera ingest pulls a camera. For each viewer it publishes a lease on
`vigil.live-watch.v1` (renewed every LEASE_RENEW_S, lasting LEASE_MS); whichever camera ingest has
the camera publishes its sampled frames on `vigil.live.v1` while a lease holds
(ingest/camera/live.py), and the viewer's own consumer (no group: nothing to commit) reads the
camera's one partition from its end. When the viewer goes away the lease is ended at once (and
would lapse anyway), so frames flow only while someone watches. Operators and supervisors may
watch any camera, an enterprise its own (another's is a 404, as for alerts). The credential is
checked again every CREDENTIAL_CHECK_S, as the alert stream does: a revoked key stops within
seconds. Memory per viewer is one frame plus the consumer's fetch (at most 1 MiB), and viewers per
process are capped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated

import anyio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.structs import TopicPartition
from fastapi import APIRouter, HTTPException, Path, Request, status
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from api.alert_query import scope
from api.auth import AUTH_ERRORS, Authenticated, still_valid
from api.deps import ACQUIRE_TIMEOUT_S, Pool
from api.models import ErrorBody
from api.params import ID_PATTERN

# The alert stream's bound on how long a revoked key or ended session keeps receiving, for frames too.
from api.stream import CREDENTIAL_CHECK_S
from vigil import metrics
from vigil.events import LiveWatch, encode
from vigil.kafka import client_security, now_ms
from vigil.topics import LIVE_FRAMES, LIVE_WATCH

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1/cameras", tags=["cameras"])

# A lease lasts 10 s and is renewed every 3 s: two renewals may be lost (Kafka slow) before the
# frames stop, and a viewer that vanished without a word (network cut) costs at most 10 s of frames.
LEASE_MS = 10_000
LEASE_RENEW_S = 3.0
# One fetch waits this long for a frame, which bounds how late a renewal or a check can be.
POLL_MS = 500
# Reaching Kafka must not keep a viewer waiting longer.
OPEN_TIMEOUT_S = 5.0
# Viewers per API process: each holds a Kafka producer and consumer (two connections and up to
# 1 MiB of fetch buffer); 32 is a monitoring room's worth, and bounds memory whatever clients do.
MAX_VIEWERS = 32
BOUNDARY = "vigil-live-frame"

# The viewers open in this process (a set, so a viewer is counted once however its response ends).
_open: set[LiveViewer] = set()


def _count() -> None:
    metrics.api_live_viewers.set(len(_open))


class LiveUnavailable(Exception):
    """Kafka cannot be reached."""


class LiveViewer:
    """One viewer's lease and consumer."""

    def __init__(self, bootstrap: str, camera_id: str, enterprise_id: str) -> None:
        self.camera_id, self.enterprise_id = camera_id, enterprise_id
        self.watcher = secrets.token_hex(8)
        self._bootstrap = bootstrap
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self.frames = 0

    async def open(self) -> None:
        try:
            await asyncio.wait_for(self._open(), OPEN_TIMEOUT_S)
        except (KafkaError, TimeoutError, OSError) as exc:
            await self.close()
            raise LiveUnavailable(str(exc) or type(exc).__name__) from None

    async def _open(self) -> None:
        self._producer = AIOKafkaProducer(
            **client_security(), bootstrap_servers=self._bootstrap, client_id="api-live", linger_ms=0
        )
        await self._producer.start()
        self._consumer = AIOKafkaConsumer(
            **client_security(),
            bootstrap_servers=self._bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="latest",
            client_id="api-live",
            max_partition_fetch_bytes=1024 * 1024,
        )
        await self._consumer.start()
        await self._consumer.topics()
        partitions = sorted(self._consumer.partitions_for_topic(LIVE_FRAMES) or ())
        if not partitions:
            raise LiveUnavailable(f"no topic {LIVE_FRAMES}")
        # The producer's own partitioner: the camera's frames are on this one partition.
        partition = DefaultPartitioner()(self.camera_id.encode(), partitions, partitions)
        tp = TopicPartition(LIVE_FRAMES, partition)
        self._consumer.assign([tp])
        await self._consumer.seek_to_end(tp)
        await self._consumer.position(tp)
        await self._lease(now_ms() + LEASE_MS)

    async def _lease(self, until: int) -> None:
        assert self._producer is not None
        watch = LiveWatch(self.camera_id, self.enterprise_id, self.watcher, until, now_ms())
        await self._producer.send_and_wait(LIVE_WATCH, encode(watch), key=self.camera_id.encode())

    async def frames_of(self, allowed: Callable[[], Awaitable[bool]]) -> AsyncIterator[bytes]:
        """Multipart parts, one per frame, until the credential no longer holds."""
        async for ts, jpeg in self.jpegs(allowed):
            yield mjpeg_part(jpeg, ts)

    async def jpegs(self, allowed: Callable[[], Awaitable[bool]]) -> AsyncIterator[tuple[int, bytes]]:
        """(timestamp ms, JPEG) of each frame, renewing the lease, until `allowed` says no. Public
        too: the public kitchen window (api/public.py) reads a camera through the same lease."""
        assert self._consumer is not None
        last_ts, renewed, checked = 0, time.monotonic(), time.monotonic()
        while True:
            now = time.monotonic()
            if now - renewed >= LEASE_RENEW_S:
                with contextlib.suppress(KafkaError):  # Kafka slow: the next renewal may land
                    await self._lease(now_ms() + LEASE_MS)
                renewed = now
            if now - checked >= CREDENTIAL_CHECK_S:
                if not await _allowed(allowed):
                    return
                checked = now
            batches = await self._consumer.getmany(timeout_ms=POLL_MS, max_records=4)
            for records in batches.values():
                for record in records:
                    ts = _ts(record.headers)
                    # Another camera on this partition, or a second ingest's copy of a frame sent.
                    if record.key != self.camera_id.encode() or ts <= last_ts or not record.value:
                        continue
                    last_ts = ts
                    self.frames += 1
                    yield ts, record.value

    async def close(self) -> None:
        if self._producer is not None:
            with contextlib.suppress(Exception):  # ending the lease early is a courtesy: it lapses anyway
                await asyncio.wait_for(self._lease(0), 2)
            await self._producer.stop()
        if self._consumer is not None:
            await self._consumer.stop()


def _ts(headers: object) -> int:
    for name, value in headers or ():  # type: ignore[attr-defined]
        if name == "ts":
            with contextlib.suppress(ValueError):
                return int(value)
    return 0


def mjpeg_part(jpeg: bytes, ts: int) -> bytes:
    """One part of the multipart/x-mixed-replace body (BOUNDARY)."""
    head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n"
    head += f"X-Timestamp: {ts}\r\n\r\n"
    return head.encode() + jpeg + b"\r\n"


async def _allowed(allowed: Callable[[], Awaitable[bool]]) -> bool:
    try:
        return await allowed()
    except Exception:  # the database is away: keep streaming rather than cut every viewer
        log.warning("re-checking a live viewer's credential failed; checking again later")
        return True


class _LiveResponse(StreamingResponse):
    """Owns the viewer for the whole response, however it ends (client gone, revoked, error)."""

    def __init__(self, viewer: LiveViewer, allowed: Callable[[], Awaitable[bool]]) -> None:
        super().__init__(
            viewer.frames_of(allowed),
            media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
            headers={
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",
                "X-Content-Type-Options": "nosniff",
            },
        )
        self._viewer = viewer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                try:
                    await self._viewer.close()
                except Exception:
                    log.exception("closing a live viewer failed")
                finally:
                    _open.discard(self._viewer)
                    _count()


@router.get(
    "/{camera_id}/live",
    summary="Watch a camera live (MJPEG, multipart/x-mixed-replace) at its sampling rate",
    description="Operators and supervisors may watch any camera; an enterprise its own cameras.",
    response_class=StreamingResponse,
    responses={
        **AUTH_ERRORS,
        200: {
            "description": "one JPEG part per sampled frame, until the client goes or the credential ends",
            "content": {"multipart/x-mixed-replace": {"schema": {"type": "string", "format": "binary"}}},
        },
        403: {"model": ErrorBody, "description": "an enterprise credential without an enterprise"},
        404: {"model": ErrorBody, "description": "no such camera (or not the caller's), or it is disabled"},
        503: {"model": ErrorBody, "description": "Kafka not configured or unreachable, or too many viewers"},
    },
)
async def watch_camera(
    request: Request,
    principal: Authenticated,
    pool: Pool,
    camera_id: Annotated[str, Path(pattern=ID_PATTERN)],
) -> StreamingResponse:
    tenant = scope(principal)
    async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn:
        cur = await conn.execute(
            "SELECT enterprise_id FROM cameras WHERE camera_id = %s AND enabled"
            " AND (%s::text IS NULL OR enterprise_id = %s)",
            (camera_id, tenant, tenant),
        )
        row = await cur.fetchone()
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such camera")
    bootstrap: str | None = getattr(request.app.state, "kafka_bootstrap", None)
    if not bootstrap:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, "live view needs Kafka: set VIGIL_KAFKA_BOOTSTRAP"
        )
    if len(_open) >= MAX_VIEWERS:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "too many live viewers on this API process")
    viewer = LiveViewer(bootstrap, camera_id, str(row[0]))
    _open.add(viewer)
    _count()
    try:
        await viewer.open()
    except LiveUnavailable as exc:
        _open.discard(viewer)
        _count()
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"live view unavailable: {exc}") from None
    return _LiveResponse(viewer, lambda: still_valid(request, principal))
