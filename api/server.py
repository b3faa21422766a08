"""The API as a Vigil service: uvicorn serving `create_app(settings)` inside the caller's loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator
from typing import Any

import uvicorn

from api.app import create_app
from vigil.errors import InfrastructureUnavailable
from vigil.service import Service
from vigil.settings import Settings

log = logging.getLogger(__name__)

# In-flight requests (and, later, live streams) get this long to finish on stop.
GRACEFUL_SHUTDOWN_S = 5


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its signal handling. Standalone, uvicorn replaces the SIGINT/SIGTERM
    handlers while it serves; embedded, that would make a Ctrl-C stop only the API while the
    other services run on. The process that owns the signals calls `ApiService.stop()`."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ApiService(Service):
    name = "api"

    def __init__(self, settings: Settings, *, start_timeout_s: float = 30.0) -> None:
        super().__init__()
        self._host, self._port = settings.api_host, settings.api_port
        self._start_timeout_s = start_timeout_s
        # Built now, so a missing token or database URL refuses construction, not start().
        self.app = create_app(settings)
        config = uvicorn.Config(
            self.app,
            host=self._host,
            port=self._port,
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
    def url(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}"

    async def _start(self) -> None:
        self._task = self.spawn(self._serve(), "server")
        # uvicorn exposes no start event, only the `started` flag it sets after binding.
        deadline = time.monotonic() + self._start_timeout_s
        while not self._server.started:
            if self._task.done():
                # Let the task's own error (bind or lifespan failure) be the one the caller sees.
                exc = None if self._task.cancelled() else self._task.exception()
                raise exc or InfrastructureUnavailable(f"API server on {self.url} exited during start-up")
            if time.monotonic() > deadline:
                await self._shutdown()
                raise InfrastructureUnavailable(
                    f"API server on {self.url} not started after {self._start_timeout_s:g}s"
                )
            await asyncio.sleep(0.02)
        log.info("API serving on %s", self.url)

    async def _serve(self) -> None:
        try:
            await self._server.serve()
        except SystemExit as exc:
            # uvicorn calls sys.exit() when it cannot bind or the lifespan start-up fails. In a
            # task that would escape the event loop and end the whole process; here it is this
            # service's failure, reported through `failed` like any other.
            raise InfrastructureUnavailable(
                f"API server on {self.url} failed to start (port in use, or database unreachable?)"
            ) from exc

    async def stop(self) -> None:
        # Service.stop cancels spawned tasks before calling _stop; cancelling uvicorn would skip
        # its shutdown (in-flight requests dropped, lifespan not run, pool left open). Ask it to
        # exit first; the base then finds the task already finished.
        if self._started and not self._stopped:
            await self._shutdown()
        await super().stop()

    async def _stop(self) -> None:
        await self._shutdown()  # a no-op when stop() has already shut the server down

    async def _shutdown(self) -> None:
        task = self._task
        if task is None or task.done():
            return
        self._server.should_exit = True
        # uvicorn bounds its own graceful phase; this extra margin covers the lifespan shutdown.
        done, _ = await asyncio.wait({task}, timeout=GRACEFUL_SHUTDOWN_S + 5)
        if not done:
            log.warning("API server did not stop in time; cancelling it")
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
