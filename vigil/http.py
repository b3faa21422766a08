"""uvicorn embedded in a Vigil service's event loop: the API and the camera ingest's push endpoint
both serve HTTP this way."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator
from typing import Any

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
