"""The MJPEG camera: what OpenCV (FFMPEG) and plain HTTP clients read, several at once; clients
that hang up; the camera dropping off the network and coming back."""

from __future__ import annotations

import http.client
import socket
import struct
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from urllib.parse import urlsplit

import cv2
import numpy as np
import pytest

from simulators.camera import DEMO_LOOP_S, DEMO_SCRIPT, KitchenScene
from simulators.mjpeg import MjpegServer

# Faster than the default 5 fps so the tests wait less; nothing else depends on it.
FPS = 20.0


@pytest.fixture
def server() -> Iterator[MjpegServer]:
    with MjpegServer(KitchenScene(DEMO_SCRIPT, loop_s=DEMO_LOOP_S), fps=FPS) as s:
        yield s


def _connect(server: MjpegServer, path: str = "/stream.mjpg") -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    conn.request("GET", path)
    return conn.getresponse()


def _read_part(resp: http.client.HTTPResponse) -> tuple[dict[str, str], bytes]:
    """One multipart part: the boundary line, headers, Content-Length bytes of JPEG, CRLF."""
    assert resp.fp is not None
    if not (boundary := resp.fp.readline()):
        raise EOFError("the stream ended")
    assert boundary == b"--frame\r\n"
    headers = {}
    while (line := resp.fp.readline()) != b"\r\n":
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    body = resp.read(int(headers["content-length"]))
    assert resp.read(2) == b"\r\n"
    return headers, body


def _decode(jpeg: bytes) -> np.ndarray:
    frame = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert frame is not None
    return frame


def test_opencv_reads_the_stream(server: MjpegServer) -> None:
    started = time.monotonic()
    cap = cv2.VideoCapture(server.url, cv2.CAP_FFMPEG)
    try:
        assert cap.isOpened(), "FFMPEG could not open the stream"
        opened = time.monotonic() - started
        frames = [cap.read() for _ in range(3)]
    finally:
        cap.release()
    assert all(ok and frame.shape == (480, 640, 3) for ok, frame in frames)
    assert opened < 10  # found no frame at all otherwise (FFMPEG gives up probing after ~5 s)


def test_parts_are_jpegs_with_their_length(server: MjpegServer) -> None:
    resp = _connect(server)
    try:
        assert resp.status == 200
        assert resp.getheader("Content-Type") == "multipart/x-mixed-replace; boundary=frame"
        bodies = []
        for _ in range(3):
            headers, body = _read_part(resp)
            assert headers["content-type"] == "image/jpeg"
            assert body[:2] == b"\xff\xd8" and body[-2:] == b"\xff\xd9"  # JPEG start/end markers
            assert _decode(body).shape == (480, 640, 3)
            bodies.append(body)
        assert len(set(bodies)) == 3  # each part a new frame: the sensor noise alone sees to it
    finally:
        resp.close()


def test_snapshot_and_other_paths(server: MjpegServer) -> None:
    with urllib.request.urlopen(server.snapshot_url, timeout=5) as resp:
        assert resp.headers["Content-Type"] == "image/jpeg"
        assert _decode(resp.read()).shape == (480, 640, 3)
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"http://127.0.0.1:{server.port}/nothing", timeout=5)
    assert err.value.code == 404


def test_clients_share_one_encoding_per_tick(server: MjpegServer) -> None:
    clients = [_connect(server) for _ in range(4)]
    started, encoded = time.monotonic(), server.frames_encoded
    try:
        received = [[_read_part(c)[1] for _ in range(4)] for c in clients]
        elapsed = time.monotonic() - started
        assert server.clients == 4
    finally:
        for c in clients:
            c.close()
    # Per-client encoding would be >= 16 new frames; one per tick is what the clock allows.
    assert server.frames_encoded - encoded <= elapsed * FPS + 2
    # Clients that read in step see the very same JPEG bytes for the same tick.
    assert set(received[0]) & set(received[1])


def test_a_client_hanging_up_harms_nobody_else(server: MjpegServer) -> None:
    steady = _connect(server)
    rude = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    rude.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: camera\r\n\r\n")
    assert rude.recv(100).startswith(b"HTTP/1.0 200")
    # Close with a reset rather than a FIN: the server's next write meets ECONNRESET / EPIPE.
    rude.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    rude.close()
    try:
        for _ in range(5):
            _read_part(steady)
        fresh = _connect(server)
        _read_part(fresh)
        fresh.close()
    finally:
        steady.close()
    deadline = time.monotonic() + 5
    while server.clients and time.monotonic() < deadline:  # each handler notices its client left
        time.sleep(0.05)
    assert server.clients == 0


def test_the_camera_drops_off_the_network_and_comes_back(server: MjpegServer) -> None:
    watching = _connect(server)
    _read_part(watching)
    server.set_available(False)
    with pytest.raises((EOFError, ConnectionError, http.client.IncompleteRead)):
        for _ in range(10):  # at most a part already in flight, then the stream ends
            _read_part(watching)
    watching.close()
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        _connect(server)  # accepted, then closed without a reply
    cap = cv2.VideoCapture(server.url, cv2.CAP_FFMPEG)
    assert not cap.isOpened()
    cap.release()

    server.set_available(True)
    back = _connect(server)
    try:
        assert back.status == 200
        _read_part(back)
    finally:
        back.close()


def test_scene_time_runs_at_the_speed_factor() -> None:
    scene = KitchenScene(DEMO_SCRIPT, loop_s=DEMO_LOOP_S)
    with MjpegServer(scene, fps=FPS, speed=20.0, start_s=55.0) as server:
        time.sleep(0.2)
        assert server.scene_time() >= 55.0 + 0.2 * 20.0


def test_start_stop_and_context_manager() -> None:
    server = MjpegServer(KitchenScene(), fps=FPS)
    with pytest.raises(RuntimeError):
        _ = server.url  # no port before start
    with server:
        port = server.port
        assert urlsplit(server.url).path == "/stream.mjpg"
        resp = _connect(server)
        _read_part(resp)
    server.stop()  # a second stop is harmless
    with pytest.raises((EOFError, ConnectionError, http.client.IncompleteRead)):
        for _ in range(10):
            _read_part(resp)  # the open stream ended with the server
    resp.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
