"""Serves a simulated scene as an IP camera would: an MJPEG stream over HTTP.

`GET /stream.mjpg` is `multipart/x-mixed-replace; boundary=frame`, one `image/jpeg` part per frame
with its `Content-Length` (FFMPEG's mpjpeg demuxer, which `cv2.VideoCapture` uses, needs the
length or it has to scan for the boundary); `GET /snapshot.jpg` is the latest frame. One ticker
thread renders and encodes each frame once, at the configured rate in real time, and every client
sends that same JPEG; a slow client skips frames rather than queueing them.

`set_available(False)` makes the camera drop off the network as far as a client can tell: open
streams are cut and new connections are closed before any reply; `set_available(True)` brings it
back. Scene time keeps running meanwhile, as the kitchen does.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Final, Protocol

import cv2
import numpy as np
from numpy.typing import NDArray

log = logging.getLogger(__name__)

BOUNDARY: Final = "frame"
# How long a send may block before the client is taken for gone: a stalled reader must not pin
# a handler thread forever, and 10 s is far beyond any healthy client's hiccup.
SEND_TIMEOUT_S: Final = 10.0
_PAGE: Final = b'<!doctype html><title>Vigil camera</title><img src="/stream.mjpg">'


class Scene(Protocol):
    def render(self, t: float) -> NDArray[np.uint8]: ...


class _Http(ThreadingHTTPServer):
    daemon_threads = True  # a handler stuck on a dead client must not block interpreter exit
    owner: MjpegServer


class _Handler(BaseHTTPRequestHandler):
    server: _Http
    timeout = SEND_TIMEOUT_S

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        cam = self.server.owner
        if not cam.available:
            self.close_connection = True  # an unreachable camera: no reply at all
            return
        path = self.path.split("?", 1)[0]
        if path == "/stream.mjpg":
            cam._stream(self)
        elif path == "/snapshot.jpg":
            try:
                jpeg = cam._wait_frame(0)[1]
            except ConnectionAbortedError:
                self.close_connection = True  # went off the network just now
                return
            self._send(200, "image/jpeg", jpeg)
        elif path == "/":
            self._send(200, "text/html", _PAGE)
        else:
            self._send(404, "text/plain", b"not found\n")

    def _send(self, code: int, ctype: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)


class MjpegServer:
    """An MJPEG camera on 127.0.0.1 (a free port by default) showing `scene`.

    Scene time is wall time since `start()` times `speed`, offset by `start_s`.
    """

    def __init__(
        self,
        scene: Scene,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        fps: float = 5.0,
        speed: float = 1.0,
        start_s: float = 0.0,
        quality: int = 80,  # typical of IP cameras: ~30 kB a 640x480 frame, artefacts negligible
    ) -> None:
        if fps <= 0 or speed <= 0:
            raise ValueError("fps and speed must be positive")
        self.scene, self.fps, self.speed, self.start_s = scene, fps, speed, start_s
        self._host, self._port, self._quality = host, port, quality
        self._cond = threading.Condition()
        self._frame: tuple[int, bytes] | None = None  # (sequence number, JPEG)
        self._available = True
        self._stopping = threading.Event()
        self._conns: set[socket.socket] = set()
        self._http: _Http | None = None
        self._threads: list[threading.Thread] = []
        self._t0 = 0.0
        self.frames_encoded = 0
        self.clients = 0  # stream clients connected now

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> MjpegServer:
        if self._http is not None:
            raise RuntimeError("already started")
        self._stopping.clear()
        self._t0 = time.monotonic()
        self._tick()  # the first frame exists before anyone can connect: FFMPEG probes at once
        self._http = _Http((self._host, self._port), _Handler)
        self._http.owner = self
        self._threads = [
            threading.Thread(target=self._ticker, name="mjpeg-ticker", daemon=True),
            threading.Thread(target=self._http.serve_forever, args=(0.1,), name="mjpeg-http", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Stops serving and cuts every client; safe to call twice."""
        http, self._http = self._http, None
        if http is None:
            return
        self._stopping.set()
        http.shutdown()
        self._drop_clients()
        http.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> MjpegServer:
        return self.start()

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._http is None:
            raise RuntimeError("not started")
        return int(self._http.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}/stream.mjpg"

    @property
    def snapshot_url(self) -> str:
        return f"http://{self._host}:{self.port}/snapshot.jpg"

    @property
    def available(self) -> bool:
        return self._available

    def set_available(self, available: bool) -> None:
        """Takes the camera off the network (cutting open streams) or puts it back."""
        self._available = available
        if not available:
            self._drop_clients()

    def scene_time(self) -> float:
        return self.start_s + (time.monotonic() - self._t0) * self.speed

    # -- frames -------------------------------------------------------------------------------

    def _tick(self) -> None:
        frame = self.scene.render(self.scene_time())
        ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, self._quality])
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        with self._cond:
            seq = self._frame[0] + 1 if self._frame else 0
            self._frame = (seq, buf.tobytes())
            self.frames_encoded += 1
            self._cond.notify_all()

    def _ticker(self) -> None:
        period = 1.0 / self.fps
        due = time.monotonic()
        while not self._stopping.is_set():
            # Fixed-rate schedule: a late tick does not push the later ones back.
            due += period
            delay = due - time.monotonic()
            if delay < -period:
                due = time.monotonic()  # fell far behind (a stalled machine): skip, don't burst
            if self._stopping.wait(max(0.0, delay)):
                return
            try:
                self._tick()
            except Exception:
                log.exception("camera simulator: rendering a frame failed")

    def _wait_frame(self, after: int) -> tuple[int, bytes]:
        """The newest frame with a sequence number >= `after`, waiting for it if need be; raises
        ConnectionAbortedError when the camera stops or goes off the network meanwhile."""
        with self._cond:
            while True:
                if self._stopping.is_set() or not self._available:
                    raise ConnectionAbortedError("camera went away")
                if self._frame is not None and self._frame[0] >= after:
                    return self._frame
                self._cond.wait()

    def _stream(self, handler: _Handler) -> None:
        conn = handler.connection
        with self._cond:
            self._conns.add(conn)
            self.clients += 1
        try:
            handler.send_response(200)
            handler.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            handler.send_header("Cache-Control", "no-store")
            handler.send_header("Connection", "close")
            handler.end_headers()
            seq = 0
            while True:
                seq, jpeg = self._wait_frame(seq)
                head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                handler.wfile.write(head.encode() + jpeg + b"\r\n")
                seq += 1
        except OSError as exc:
            # BrokenPipe / ConnectionReset: the client hung up; TimeoutError: it stopped reading;
            # ConnectionAborted: we stopped or went off the network. None concerns other clients.
            log.debug("stream client %s gone: %s", handler.client_address, exc)
        finally:
            handler.close_connection = True
            with self._cond:
                self._conns.discard(conn)
                self.clients -= 1

    def _drop_clients(self) -> None:
        with self._cond:
            conns = list(self._conns)
            self._cond.notify_all()  # waiting streams see the flag and end
        for conn in conns:
            # A stream blocked in a send to a slow client would only notice at its next frame;
            # shutting the socket down cuts it now, as a camera losing power would.
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
