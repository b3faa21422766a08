"""uvicorn embedded in a Vigil service's event loop: the API and the camera ingest's push endpoint
both serve HTTP this way."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import uvicorn

from vigil.errors import InfrastructureUnavailable

log = logging.getLogger(__name__)

# In-flight requests (and live streams) get this long to finish on stop.
GRACEFUL_SHUTDOWN_S = 5


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its signal handling. Standalone, uvicorn replaces the SIGINT/SIGTERM
    handlers while it serves; embedded, that would make a Ctrl-C stop only the HTTP server while
    the other services run on. The process that owns the signals stops the services."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class EmbeddedHttpServer:
    def __init__(self, app: Any, *, host: str, port: int, label: str, start_timeout_s: float = 30.0) -> None:
        self._host, self._port, self._label = host, port, label
        self._start_timeout_s = start_timeout_s
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            lifespan="on",
            # Leave logging set-up to the process (the CLI); uvicorn's own dictConfig would add
            # handlers of its own to its loggers.
            log_config=None,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        )
        self._server = _EmbeddedServer(config)
        self._task: asyncio.Task[Any] | None = None

    @property
    def port(self) -> int:
        """The bound port (the real one when 0 was asked for)."""
        if self._server.started and self._server.servers:
            sockets = self._server.servers[0].sockets
            if sockets:
                return int(sockets[0].getsockname()[1])
        return self._port

    @property
    def url(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    async def start(self, spawn: Any) -> None:
        """Serve in a task made by `spawn(coro, name)` (the owning service's), and return once bound."""
        self._task = spawn(self._serve(), "http")
        # uvicorn exposes no start event, only the `started` flag it sets after binding.
        deadline = time.monotonic() + self._start_timeout_s
        while not self._server.started:
            if self._task.done():
                # Let the task's own error (bind or lifespan failure) be the one the caller sees.
                exc = None if self._task.cancelled() else self._task.exception()
                raise exc or InfrastructureUnavailable(f"{self._label} on {self.url} exited during start-up")
            if time.monotonic() > deadline:
                await self.shutdown()
                raise InfrastructureUnavailable(
                    f"{self._label} on {self.url} not started after {self._start_timeout_s:g}s"
                )
            await asyncio.sleep(0.02)
        log.info("%s serving on %s", self._label, self.url)

    async def _serve(self) -> None:
        try:
            await self._server.serve()
        except SystemExit as exc:
            # uvicorn calls sys.exit() when it cannot bind or the lifespan start-up fails. In a
            # task that would escape the event loop and end the whole process; here it is the
            # owning service's failure, reported through `failed` like any other.
            raise InfrastructureUnavailable(
                f"{self._label} on {self.url} failed to start (port in use, or database unreachable?)"
            ) from exc

    async def shutdown(self) -> None:
        """Ask uvicorn to finish in-flight requests and exit; a no-op when it is not running.
        Call it before the owning service cancels its tasks: cancelling uvicorn would skip its
        shutdown (in-flight requests dropped, lifespan not run)."""
        task = self._task
        if task is None or task.done():
            return
        self._server.should_exit = True
        # uvicorn bounds its own graceful phase; this extra margin covers the lifespan shutdown.
        done, _ = await asyncio.wait({task}, timeout=GRACEFUL_SHUTDOWN_S + 5)
        if not done:
            log.warning("%s did not stop in time; cancelling it", self._label)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


# --- body limits --------------------------------------------------------------------------------


class _BodyTooLarge(Exception):
    """Raised out of `receive` when the body passes its limit; BodyLimit answers 413 instead."""


class BodyLimit:
    """ASGI middleware that bounds every request body while it is received, before any route (and
    so before authentication) sees it. A declared Content-Length over the limit is answered 413
    without reading a byte; a chunked body, or one that lies, is counted as it arrives and the
    request is cut off at the limit. Without it a route that reads its body before checking the
    credential (FastAPI parses JSON before running dependencies) buffers whatever is sent: one
    400 MB body took the API from 0.35 to 1.7 GB.

    `limit_for(path)` gives the limit for a request path, so an upload route can allow more than
    JSON routes. The refusal closes the connection: the rest of the body is never read."""

    def __init__(self, app: Any, *, limit_for: Callable[[str], int]) -> None:
        self.app = app
        self._limit_for = limit_for

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit_for(scope["path"])
        for name, value in scope["headers"]:
            # The server has already refused a malformed Content-Length (h11 and httptools both).
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await _refuse(receive, send, limit)
                return
        seen = 0
        started = tripped = False

        async def counting_receive() -> Any:
            nonlocal seen, tripped
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    tripped = not started
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Any) -> None:
            nonlocal started
            # Once the body was cut off, whatever the app makes of the error it was given (FastAPI
            # answers 400 "error parsing the body", a form parser its own 400) is replaced by the 413.
            if tripped:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except Exception:
            if not tripped:  # includes a route that answered before reading all of its body
                raise
        if tripped:
            await _refuse(receive, send, limit)


# After a 413 the rest of the body is read and thrown away for at most this long (and this much),
# then the connection is closed. Closing at once would make the kernel answer the bytes still
# arriving with a reset, which can destroy the 413 in the client's buffer before it is read.
_LINGER_S = 2.0
_LINGER_BYTES = 64 * 1024 * 1024


async def _refuse(receive: Any, send: Any, limit: int) -> None:
    body = orjson.dumps({"detail": f"the request body is over its limit of {limit} bytes"})
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                # The unread rest of the body would otherwise be taken for the next request.
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": True})
    drained = 0
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(_LINGER_S):
            while drained < _LINGER_BYTES:
                message = await receive()  # each chunk dropped as it comes: memory stays flat
                if message["type"] != "http.request" or not message.get("more_body", False):
                    break
                drained += len(message.get("body", b""))
    await send({"type": "http.response.body", "body": b""})
