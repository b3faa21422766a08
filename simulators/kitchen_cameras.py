"""The demo's kitchen cameras: simulated scenes served as MJPEG streams on loopback and registered
as cameras of the demo site, so `vigil demo` exercises the real pull path (HTTP, OpenCV, gating,
Kafka, the detector) and not a shortcut.

With the trained kitchen model (the default) the cameras show real held-out photos
(`PhotoScene`); with the simulator's colour-marker model they show the scripted cartoon kitchen.
"""

from __future__ import annotations

import asyncio

from psycopg_pool import AsyncConnectionPool

from simulators.camera import DEMO_LOOP_S, DEMO_SCRIPT, KitchenScene
from simulators.mjpeg import MjpegServer, Scene
from simulators.photo_scene import PhotoScene
from vigil.cameras import register_camera
from vigil.service import Service

# Frames per second each simulated camera serves; ingest samples fewer (the camera's sample_fps).
STREAM_FPS = 5.0
SAMPLE_FPS = 2.0


class SimulatedKitchenCameras(Service):
    name = "kitchen-cameras"

    def __init__(
        self,
        pool: AsyncConnectionPool,
        *,
        enterprise_id: str,
        site_id: str,
        cameras: int = 2,
        photos: bool = True,
    ) -> None:
        super().__init__()
        self._pool, self.enterprise_id, self.site_id = pool, enterprise_id, site_id
        self.photos = photos
        self.servers = [
            MjpegServer(self._scene(i, photos), fps=STREAM_FPS, start_s=self._start_s(i, cameras, photos))
            for i in range(cameras)
        ]
        self.camera_ids = [f"demo-kitchen-cam-{i + 1}" for i in range(cameras)]

    @staticmethod
    def _scene(i: int, photos: bool) -> Scene:
        if photos:
            return PhotoScene(offset=3 * i)  # the second camera starts halfway through the photos
        # Different seeds place the workers differently; a time offset (below) keeps the scripted
        # violations of the cameras from all happening at once.
        return KitchenScene(DEMO_SCRIPT, seed=i, loop_s=DEMO_LOOP_S)

    @staticmethod
    def _start_s(i: int, cameras: int, photos: bool) -> float:
        return 0.0 if photos else i * DEMO_LOOP_S / (cameras + 1)

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
