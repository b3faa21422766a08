"""The public kitchen window (互联网+明厨亮灶): chosen cameras of a site, watched by anyone who
scans the QR code at its door. No login; the link's unguessable token is the only key.

`GET /public/w/{token}` is a small HTML page (no script, a strict CSP, no external resource, no
referrer so the token does not leak to other sites) with one image per published camera;
`GET /public/w/{token}/cameras/{camera_id}.mjpg` is that camera as MJPEG at one frame a second.
MJPEG rather than a JPEG the page polls: an `<img>` plays it without any script, and one open
response per viewer is what the per-address limit counts, where polling at 1 fps would be 60
requests a minute per camera and a request limit could not tell a viewer from a scraper.

What a public viewer sees is made once per camera, not per viewer: the first viewer of a camera
starts a feed (a live-view lease, api/live.py, so frames flow from whichever camera ingest has the
camera), which keeps one frame a second, reduces it to 640x360 and blurs every face
(vigil/face_blur.py) on a worker thread; every viewer of the camera is sent that frame. A frame
whose faces could not be checked is never sent (fail closed). The feed re-reads the camera's
publication every CREDENTIAL_CHECK_S (2 s, as the live view): unpublished, or the site's link revoked or
replaced, and every viewer's stream ends within seconds; the last viewer gone, the feed and its
lease end. No alert, finding or enterprise datum is on the page: the site's name and the camera
count only.

Limits: per client address, VIGIL_PUBLIC_WINDOW_REQUESTS_PER_MINUTE requests a minute (429 with
Retry-After beyond) and one open stream per camera (429); per API process,
VIGIL_PUBLIC_WINDOW_MAX_VIEWERS streams (503). The address is the TCP peer's: behind a proxy,
the proxy must pass the client's (uvicorn --forwarded-allow-ips) or limit per address itself.
These routes are not in the OpenAPI document: they are a web page and a video, not the API.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import html
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated

import anyio
from fastapi import APIRouter, HTTPException, Path, Request, status
from fastapi.responses import HTMLResponse
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from api.deps import ACQUIRE_TIMEOUT_S, Pool, get_pool
from api.live import BOUNDARY, LiveUnavailable, LiveViewer, mjpeg_part
from api.params import ID_PATTERN
from api.throttle import FailedAuthLimiter
from vigil.face_blur import FaceBlur, FaceBlurUnavailable
from vigil.i18n import Language, negotiate, text
from vigil.settings import Settings

log = logging.getLogger(__name__)

# The public link's token: secrets.token_urlsafe(24), 32 characters of 192 random bits.
TOKEN_PATTERN = r"^[A-Za-z0-9_-]{32}$"  # noqa: S105 (a pattern, not a secret)
# One public frame a second: enough to see a kitchen at work, little enough to serve many viewers.
FRAME_INTERVAL_S = 1.0
# A viewer looks at its feed at least this often: the feed ending or the token changing ends it.
VIEWER_WAIT_S = 1.0
# Open streams per (address, camera): one, as a person watching needs no more.
STREAMS_PER_ADDRESS = 1
_UNAVAILABLE = "public window unavailable"
Token = Annotated[str, Path(pattern=TOKEN_PATTERN)]

_STYLE = (
    "body{margin:0;font-family:sans-serif;background:#111;color:#eee}"
    "main{max-width:680px;margin:auto;padding:12px}h1{font-size:1.3em}"
    "figure{margin:0 0 16px}img{width:100%;aspect-ratio:16/9;background:#000}"
    "p,figcaption{font-size:.9em;color:#bbb}"
)
_STYLE_HASH = base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()
# Nothing but our own images and the one inline style (by its hash): no script at all.
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; img-src 'self'; style-src 'sha256-{_STYLE_HASH}'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(eq=False)
class Feed:
    """One camera's public frames, shared by its viewers."""

    camera_id: str
    token_sha256: str | None  # the site's current link; None once unpublished or revoked
    frame: bytes | None = None
    seq: int = 0
    viewers: int = 0
    ended: bool = False
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    def publish(self, frame: bytes | None) -> None:
        self.frame = frame
        self.seq += 1
        self.changed.set()
        self.changed = asyncio.Event()

    def end(self) -> None:
        self.ended = True
        self.changed.set()


@dataclass
class PublicWindows:
    """The feeds and viewers of one API process (event loop only)."""

    settings: Settings
    limiter: FailedAuthLimiter
    feeds: dict[str, Feed] = field(default_factory=dict)
    streams: dict[tuple[str, str], int] = field(default_factory=dict)
    open_streams: int = 0
    blur: FaceBlur | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def face_blur(self) -> FaceBlur:
        if self.blur is None:
            self.blur = await asyncio.to_thread(FaceBlur)
        return self.blur


async def published(pool: Pool, camera_id: str, token: str | None = None) -> tuple[str, str] | None:
    """(site name, token SHA-256) when the camera is enabled and shown on its site's public window
    (and, with `token`, that window is the token's); else None."""
    async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn:
        cur = await conn.execute(
            "SELECT s.name, w.token_sha256 FROM public_cameras p"
            " JOIN cameras c ON c.camera_id = p.camera_id AND c.site_id = p.site_id AND c.enabled"
            " JOIN public_windows w ON w.site_id = p.site_id JOIN sites s ON s.site_id = p.site_id"
            " WHERE p.camera_id = %s AND (%s::text IS NULL OR w.token_sha256 = %s)",
            (camera_id, token and token_sha256(token), token and token_sha256(token)),
        )
        row = await cur.fetchone()
    return (str(row[0]), str(row[1])) if row else None


async def _run_feed(windows: PublicWindows, feed: Feed, viewer: LiveViewer, pool: Pool) -> None:
    blur = await windows.face_blur()

    async def still_published() -> bool:
        found = await published(pool, feed.camera_id)
        feed.token_sha256 = found[1] if found else None
        return found is not None

    last = 0.0
    try:
        async for _, jpeg in viewer.jpegs(still_published):
            if time.monotonic() - last < FRAME_INTERVAL_S:
                continue
            last = time.monotonic()
            try:
                frame: bytes | None = await asyncio.to_thread(blur.public_frame, jpeg)
            except FaceBlurUnavailable as exc:
                log.warning("public frame of %s withheld: %s", feed.camera_id, exc)
                frame = None  # viewers keep nothing they could be sent
            feed.publish(frame)
    except Exception:
        log.exception("public feed of %s failed", feed.camera_id)
    finally:
        feed.end()
        with anyio.CancelScope(shield=True):
            with contextlib.suppress(Exception):
                await viewer.close()


async def _join(windows: PublicWindows, request: Request, camera_id: str, sha: str) -> Feed:
    """The camera's running feed, started if none is; raises 503 when it cannot start."""
    async with windows.lock:
        feed = windows.feeds.get(camera_id)
        if feed is None or feed.ended:
            bootstrap: str | None = getattr(request.app.state, "kafka_bootstrap", None)
            if not bootstrap:
                raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "the public window needs Kafka")
            try:
                await windows.face_blur()  # before any frame flows: no model, no feed
            except FaceBlurUnavailable as exc:
                log.error("public window unavailable: %s", exc)
                raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, _UNAVAILABLE) from None
            viewer = LiveViewer(bootstrap, camera_id, await _enterprise_of(request, camera_id))
            try:
                await viewer.open()
            except LiveUnavailable:
                raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, _UNAVAILABLE) from None
            feed = Feed(camera_id, sha)
            feed.task = asyncio.create_task(_run_feed(windows, feed, viewer, get_pool(request)))
            windows.feeds[camera_id] = feed
        feed.viewers += 1
        return feed


def _leave(windows: PublicWindows, feed: Feed) -> None:
    feed.viewers -= 1
    if feed.viewers <= 0:
        if windows.feeds.get(feed.camera_id) is feed:
            del windows.feeds[feed.camera_id]
        if feed.task is not None:
            feed.task.cancel()  # its finally ends the lease


async def _enterprise_of(request: Request, camera_id: str) -> str:
    async with get_pool(request).connection(timeout=ACQUIRE_TIMEOUT_S) as conn:
        row = await (
            await conn.execute("SELECT enterprise_id FROM cameras WHERE camera_id = %s", (camera_id,))
        ).fetchone()
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "not found")
    return str(row[0])


async def _frames(feed: Feed, sha: str) -> AsyncIterator[bytes]:
    """The feed's frames, each once, until it ends or the link that opened the stream changes."""
    seen = 0
    while not feed.ended and feed.token_sha256 == sha:
        if feed.seq != seen:
            seen = feed.seq
            if feed.frame is not None:
                yield mjpeg_part(feed.frame, int(time.time() * 1000))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(feed.changed.wait(), VIEWER_WAIT_S)


class _PublicStream(StreamingResponse):
    """Releases the viewer's slot, its address's slot and its share of the feed however it ends."""

    def __init__(self, windows: PublicWindows, feed: Feed, sha: str, slot: tuple[str, str]) -> None:
        super().__init__(
            _frames(feed, sha), media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}", headers=_HEADERS
        )
        self._windows, self._feed, self._slot = windows, feed, slot

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            w = self._windows
            w.open_streams -= 1
            w.streams[self._slot] -= 1
            if w.streams[self._slot] <= 0:
                del w.streams[self._slot]
            _leave(w, self._feed)


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _throttle(windows: PublicWindows, request: Request) -> None:
    """Counts the request against its address; 429 past the per-minute allowance. The limiter is
    the failed-credential one (api/throttle.py): a bounded table of fixed one-minute windows, here
    fed every request rather than every failure."""
    address = _address(request)
    if (wait := windows.limiter.retry_after(address)) is not None:
        retry = {"Retry-After": str(wait)}
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, "too many requests", retry)
    windows.limiter.failed(address)


def make_router(settings: Settings) -> APIRouter:
    windows = PublicWindows(settings, FailedAuthLimiter(settings.public_window_requests_per_minute))
    router = APIRouter(prefix="/public/w", tags=["public window"], include_in_schema=False)

    @router.get("/{token}", response_class=HTMLResponse)
    async def page(request: Request, pool: Pool, token: Token) -> HTMLResponse:
        _throttle(windows, request)
        async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn:
            cur = await conn.execute(
                "SELECT s.name, array_remove(array_agg(c.camera_id ORDER BY c.camera_id), NULL)"
                " FROM public_windows w JOIN sites s ON s.site_id = w.site_id"
                " LEFT JOIN public_cameras p ON p.site_id = w.site_id"
                " LEFT JOIN cameras c ON c.camera_id = p.camera_id AND c.site_id = w.site_id AND c.enabled"
                " WHERE w.token_sha256 = %s GROUP BY s.name",
                (token_sha256(token),),
            )
            row = await cur.fetchone()
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "not found")
        language = negotiate(request.headers.get("accept-language"))
        body = render_page(language, str(row[0]), token, list(row[1]))
        headers = {**_HEADERS, "Content-Security-Policy": CONTENT_SECURITY_POLICY}
        return HTMLResponse(body, headers=headers)

    @router.get("/{token}/cameras/{camera_id}.mjpg", response_class=StreamingResponse)
    async def stream(
        request: Request, pool: Pool, token: Token, camera_id: Annotated[str, Path(pattern=ID_PATTERN)]
    ) -> StreamingResponse:
        _throttle(windows, request)
        found = await published(pool, camera_id, token)
        if found is None:  # another site's token, an unpublished camera, a revoked link: the same
            raise HTTPException(status.HTTP_404_NOT_FOUND, "not found")
        slot = (_address(request), camera_id)
        if windows.streams.get(slot, 0) >= STREAMS_PER_ADDRESS:
            raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, "this camera is already open from here")
        if windows.open_streams >= settings.public_window_max_viewers:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "too many viewers; try again later")
        windows.open_streams += 1
        windows.streams[slot] = windows.streams.get(slot, 0) + 1
        try:
            feed = await _join(windows, request, camera_id, found[1])
        except BaseException:
            windows.open_streams -= 1
            windows.streams[slot] -= 1
            if windows.streams[slot] <= 0:
                del windows.streams[slot]
            raise
        return _PublicStream(windows, feed, found[1], slot)

    return router


def render_page(language: Language, site: str, token: str, cameras: list[str]) -> str:
    """The page: the site's name, one image per camera, the notes; every text escaped."""

    def t(key: str, **params: object) -> str:
        return html.escape(text(key, language, "public", **params))

    figures = "".join(
        f'<figure><img src="/public/w/{token}/cameras/{html.escape(camera)}.mjpg"'
        f' alt="{t("page.camera", number=n)}"><figcaption>{t("page.camera", number=n)}</figcaption></figure>'
        for n, camera in enumerate(cameras, 1)
    )
    return (
        f'<!doctype html><html lang="{language}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{t('page.title', site=site)}</title><style>{_STYLE}</style></head>"
        f"<body><main><h1>{t('page.heading', site=site)}</h1><p>{t('page.note')}</p>"
        f"{figures or '<p>' + t('page.empty') + '</p>'}<p>{t('page.footer')}</p></main></body></html>"
    )
