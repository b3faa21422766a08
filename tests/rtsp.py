"""A real RTSP camera for the tests: a scene rendered to an H.264 file (PyAV's libx264, a keyframe
every two seconds, no B-frames, as IP cameras stream) and served by aio-rtsp-toolkit's RTSP server
(RTP over TCP) in a subprocess. Each client session plays the file from its start at its own rate,
then loops it, so a camera's scene time runs from when camera ingest connects.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import cv2
from av.video.stream import VideoStream

from simulators.mjpeg import Scene

# The server, run as `python -c SERVER <directory> <port>`: its own event loop in its own process.
_SERVER = (
    "import asyncio, sys\n"
    "import aio_rtsp_toolkit.server as server\n"
    "asyncio.run(server.serve(sys.argv[1], '127.0.0.1', int(sys.argv[2])))\n"
)
# The server answers within a second of starting; far longer means it will not.
START_TIMEOUT_S = 20.0
GOP_S = 2.0  # a keyframe every two seconds: a common IP-camera setting


def render_h264(scene: Scene, path: Path, *, fps: int, seconds: float, b_frames: int = 0) -> None:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        assert isinstance(stream, VideoStream)
        first = scene.render(0.0)
        stream.width, stream.height, stream.pix_fmt = first.shape[1], first.shape[0], "yuv420p"
        stream.options = {"g": str(round(GOP_S * fps)), "bf": str(b_frames), "preset": "veryfast"}
        stream.time_base = Fraction(1, fps)
        for i in range(round(seconds * fps)):
            # I420 made by OpenCV: PyAV's own conversion would leave a per-thread swscale context
            # behind, which hangs a child process started later (ingest/camera/reader.py to_bgr).
            yuv = cv2.cvtColor(scene.render(i / fps), cv2.COLOR_BGR2YUV_I420)
            frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class RtspCamera:
    """`scene` as an RTSP camera at `url` for as long as the `with` block lasts."""

    def __init__(self, scene: Scene, *, fps: int = 8, seconds: float = 40.0) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="vigil-rtsp-")
        self._scene, self._fps, self._seconds = scene, fps, seconds
        self._process: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/camera.mp4"

    def __enter__(self) -> RtspCamera:
        render_h264(self._scene, Path(self._dir.name) / "camera.mp4", fps=self._fps, seconds=self._seconds)
        self.port = _free_port()
        log = open(Path(self._dir.name) / "server.log", "wb")  # the child keeps its own copy
        self._process = subprocess.Popen(
            [sys.executable, "-c", _SERVER, self._dir.name, str(self.port)], stdout=log, stderr=log
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    self.__exit__(None, None, None)
                    raise RuntimeError(f"the RTSP server did not start: {self.server_log()}") from None
                time.sleep(0.1)

    def server_log(self) -> str:
        path = Path(self._dir.name) / "server.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        self._dir.cleanup()
