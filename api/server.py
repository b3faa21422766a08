"""The API as a Vigil service: uvicorn serving `create_app(settings)` inside the caller's loop."""

from __future__ import annotations

from api.app import create_app
from vigil.http import EmbeddedHttpServer
from vigil.service import Service
from vigil.settings import Settings


class ApiService(Service):
    name = "api"

    def __init__(self, settings: Settings, *, start_timeout_s: float = 30.0) -> None:
        super().__init__()
        # Built now, so a missing token or database URL refuses construction, not start().
        self.app = create_app(settings)
        self._http = EmbeddedHttpServer(
            self.app,
            host=settings.api_host,
            port=settings.api_port,
            label="API",
            start_timeout_s=start_timeout_s,
        )

    @property
    def url(self) -> str:
        return self._http.url

    async def _start(self) -> None:
        await self._http.start(self.spawn)

    async def stop(self) -> None:
        # Service.stop cancels spawned tasks before calling _stop; let uvicorn finish first.
        if self._started and not self._stopped:
            await self._http.shutdown()
        await super().stop()

    async def _stop(self) -> None:
        await self._http.shutdown()  # a no-op when stop() has already shut the server down
