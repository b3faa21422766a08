"""The demo's kitchen cameras: simulated scenes served as MJPEG streams on loopback and registered
as cameras of the demo site, so `vigil demo` exercises the real pull path (HTTP, OpenCV, gating,
Kafka, the detector) and not a shortcut."""

from __future__ import annotations

import asyncio

from psycopg_pool import AsyncConnectionPool

from simulators.camera import DEMO_LOOP_S, DEMO_SCRIPT, KitchenScene
from simulators.mjpeg import MjpegServer
from vigil.cameras import register_camera
from vigil.service import Service

# Frames per second each simulated camera serves; ingest samples fewer (the camera's sample_fps).
STREAM_FPS = 5.0
SAMPLE_FPS = 2.0


class SimulatedKitchenCameras(Service):
    name = "kitchen-cameras"

    def __init__(
        self, pool: AsyncConnectionPool, *, enterprise_id: str, site_id: str, cameras: int = 2
    ) -> None:
        super().__init__()
        self._pool, self.enterprise_id, self.site_id = pool, enterprise_id, site_id
        # Different seeds place the workers differently; a time offset keeps the scripted
        # violations of the cameras from all happening at once.
        self.servers = [
            MjpegServer(
                KitchenScene(DEMO_SCRIPT, seed=i, loop_s=DEMO_LOOP_S),
                fps=STREAM_FPS,
                start_s=i * DEMO_LOOP_S / (cameras + 1),
            )
            for i in range(cameras)
        ]
        self.camera_ids = [f"demo-kitchen-cam-{i + 1}" for i in range(cameras)]

    async def _start(self) -> None:
        for server, camera_id in zip(self.servers, self.camera_ids, strict=True):
            await asyncio.to_thread(server.start)
            await register_camera(
                self._pool, enterprise_id=self.enterprise_id, site_id=self.site_id,
                camera_id=camera_id, source=server.url, sample_fps=SAMPLE_FPS,
            )  # fmt: skip

    async def _stop(self) -> None:
        for server in self.servers:
            await asyncio.to_thread(server.stop)
