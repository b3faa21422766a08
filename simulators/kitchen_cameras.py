"""The demo's kitchen cameras: simulated scenes served as MJPEG streams on loopback and registered
as cameras of the demo site, so `vigil demo` exercises the real pull path (HTTP, OpenCV, gating,
Kafka, the detector) and not a shortcut.

With the trained kitchen model (the default) there is one camera per bundled held-out photo, each
showing its photo steadily (`PhotoScene`: a slideshow looked like a camera turned away to the
tamper check, issue 16.8); with the simulator's colour-marker model two cameras show the scripted
cartoon kitchen.
"""

from __future__ import annotations

import asyncio

from psycopg_pool import AsyncConnectionPool

from simulators.camera import DEMO_LOOP_S, DEMO_SCRIPT, KitchenScene
from simulators.mjpeg import MjpegServer, Scene
from simulators.photo_scene import PhotoScene, bundled_photos
from vigil.cameras import register_camera
from vigil.service import Service

# Frames per second each simulated camera serves; ingest samples fewer (the camera's sample_fps).
STREAM_FPS = 5.0
SAMPLE_FPS = 2.0
CARTOON_CAMERAS = 2  # cameras showing the cartoon kitchen (with the colour-marker model)


def demo_cameras(*, photos: bool = True) -> int:
    """How many cameras the demo runs: one per bundled photo, or CARTOON_CAMERAS."""
    return len(bundled_photos()) if photos else CARTOON_CAMERAS


def demo_scene(i: int, *, photos: bool = True) -> Scene:
    """What the demo's camera `i` shows (the tests run these through the real tamper check)."""
    if photos:
        return PhotoScene(bundled_photos()[i], seed=i)
    # Different seeds place the workers differently; a time offset (below) keeps the scripted
    # violations of the cameras from all happening at once.
    return KitchenScene(DEMO_SCRIPT, seed=i, loop_s=DEMO_LOOP_S)


class SimulatedKitchenCameras(Service):
    name = "kitchen-cameras"

    def __init__(
        self,
        pool: AsyncConnectionPool,
        *,
        enterprise_id: str,
        site_id: str,
        cameras: int | None = None,
        photos: bool = True,
    ) -> None:
        """`cameras` defaults to `demo_cameras(photos=photos)`; with photos, at most one per photo."""
        super().__init__()
        self._pool, self.enterprise_id, self.site_id = pool, enterprise_id, site_id
        self.photos = photos
        if cameras is None:
            cameras = demo_cameras(photos=photos)
        self.servers = [
            MjpegServer(self._scene(i, photos), fps=STREAM_FPS, start_s=self._start_s(i, cameras, photos))
            for i in range(cameras)
        ]
        self.camera_ids = [f"demo-kitchen-cam-{i + 1}" for i in range(cameras)]

    @staticmethod
    def _scene(i: int, photos: bool) -> Scene:
        return demo_scene(i, photos=photos)

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
