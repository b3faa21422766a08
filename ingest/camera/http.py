"""Camera ingest over HTTP: edge boxes push JPEG frames, and everyone can read the per-camera
counters (JSON, and Prometheus text for scraping).

A pushed frame is checked at the boundary (token, camera, content type, size, that it really is a
JPEG that decodes, its timestamp) and then goes through the same gate and tamper checks as a
pulled one. Every refusal is an HTTP error with a reason and a dead letter.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from typing import TYPE_CHECKING, Annotated, Any

import cv2
import numpy as np
from fastapi import Depends, FastAPI, Header, HTTPException, Request, status
from fastapi.responses import PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from vigil.events import ID_PATTERN, MIN_TS_MS
from vigil.frames import JPEG_MAGIC, MAX_FRAME_PIXELS, MAX_FRAME_SIDE, image_size
from vigil.settings import Settings

if TYPE_CHECKING:
    from ingest.camera.service import CameraIngest

_bearer = HTTPBearer(auto_error=False, description="Edge push token (VIGIL_CAMERA_PUSH_TOKEN)")


def create_camera_app(ingest: CameraIngest, settings: Settings) -> FastAPI:
    token = settings.require_secret("camera_push_token").encode()
    max_bytes = settings.frame_max_bytes
    max_skew_ms = int(settings.ingest_max_clock_skew_s * 1000)
    app = FastAPI(title="Vigil camera ingest", docs_url=None, redoc_url=None)

    async def edge(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> None:
        # Bytes, not str: compare_digest raises on non-ASCII str, and the header is the caller's.
        if credentials is None or not hmac.compare_digest(credentials.credentials.encode(), token):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "a valid push token is required",
                headers={"WWW-Authenticate": "Bearer"},
            )

    async def refuse(camera_id: str, code: int, reason: str, detail: str, body: bytes = b"") -> HTTPException:
        await ingest.dead_letter(
            source=f"push/{camera_id}", reason=reason, detail=detail, payload=body[:256], key=camera_id
        )
        return HTTPException(code, {"reason": reason, "detail": detail})

    @app.post(
        "/v1/cameras/{camera_id}/frames", status_code=status.HTTP_202_ACCEPTED, dependencies=[Depends(edge)]
    )
    async def push_frame(
        camera_id: str,
        request: Request,
        content_type: Annotated[str, Header()] = "",
        x_vigil_timestamp: Annotated[int | None, Header()] = None,
    ) -> dict[str, Any]:
        if not ID_PATTERN.fullmatch(camera_id):
            raise HTTPException(status.HTTP_404_NOT_FOUND, "unknown camera")
        camera = await ingest.registry.lookup(camera_id)
        if camera is None or not camera.enabled:
            raise await refuse(camera_id, 404, "unknown_camera", f"camera {camera_id!r} is not registered")
        if not camera.pushed:
            raise await refuse(
                camera_id,
                409,
                "not_a_push_camera",
                f"camera {camera_id!r} is pulled from its source, not pushed",
            )
        if content_type.split(";")[0].strip().lower() != "image/jpeg":
            raise await refuse(camera_id, 415, "bad_content_type", "frames must be sent as image/jpeg")
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            raise await refuse(camera_id, 413, "frame_too_large", f"frames are limited to {max_bytes} bytes")
        body = bytearray()
        async for chunk in request.stream():  # bounded read: a lying Content-Length cannot exhaust memory
            body += chunk
            if len(body) > max_bytes:
                raise await refuse(
                    camera_id, 413, "frame_too_large", f"frames are limited to {max_bytes} bytes"
                )
        jpeg = bytes(body)
        now = time.time_ns() // 1_000_000
        ts = now if x_vigil_timestamp is None else x_vigil_timestamp
        if not MIN_TS_MS <= ts <= now + max_skew_ms:
            raise await refuse(
                camera_id,
                422,
                "bad_timestamp",
                "X-Vigil-Timestamp must be epoch milliseconds, not in the future",
                jpeg,
            )
        if not jpeg.startswith(JPEG_MAGIC):
            raise await refuse(camera_id, 422, "not_jpeg", "the body is not a JPEG image", jpeg)
        # The size the header declares, checked before decoding: the decoder allocates it up front,
        # so a few hundred bytes claiming 20000x20000 pixels would cost over a gigabyte.
        size = image_size(jpeg)
        if size is None or 0 in size:
            raise await refuse(camera_id, 422, "corrupt_jpeg", "the JPEG header has no readable size", jpeg)
        if max(size) > MAX_FRAME_SIDE or size[0] * size[1] > MAX_FRAME_PIXELS:
            raise await refuse(
                camera_id,
                422,
                "frame_too_large",
                f"the frame is {size[0]}x{size[1]} pixels; at most 7680x4320 (8K) is accepted",
                jpeg,
            )
        frame = await asyncio.to_thread(cv2.imdecode, np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        if frame is None:
            raise await refuse(camera_id, 422, "corrupt_jpeg", "the JPEG image does not decode", jpeg)
        sent, reason = await asyncio.to_thread(ingest.process_frame, camera, frame, ts, jpeg=jpeg)
        return {"camera_id": camera_id, "sent": sent, "reason": reason}

    @app.get("/v1/cameras/stats")
    async def camera_stats() -> dict[str, Any]:
        return {"cameras": ingest.stats()}

    @app.get("/metrics", response_class=PlainTextResponse)
    async def metrics() -> str:
        return prometheus_text(ingest.stats())

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def prometheus_text(stats: dict[str, dict[str, Any]]) -> str:
    lines = [
        "# HELP vigil_camera_frames_total Frames per camera by outcome (sent, gated, dropped, ...).",
        "# TYPE vigil_camera_frames_total counter",
    ]
    for camera_id, s in stats.items():
        for outcome, count in s["frames"].items():
            lines.append(f'vigil_camera_frames_total{{camera="{camera_id}",outcome="{outcome}"}} {count}')
    lines += [
        "# HELP vigil_camera_online 1 while the camera delivers frames.",
        "# TYPE vigil_camera_online gauge",
    ]
    lines += [f'vigil_camera_online{{camera="{c}"}} {int(bool(s["online"]))}' for c, s in stats.items()]
    lines += [
        "# HELP vigil_camera_tampered 1 while the camera's view is tampered with.",
        "# TYPE vigil_camera_tampered gauge",
    ]
    lines += [f'vigil_camera_tampered{{camera="{c}"}} {int(bool(s["tampered"]))}' for c, s in stats.items()]
    lines += [
        "# HELP vigil_camera_reconnects_total Stream drops followed by a reconnect.",
        "# TYPE vigil_camera_reconnects_total counter",
    ]
    lines += [f'vigil_camera_reconnects_total{{camera="{c}"}} {s["reconnects"]}' for c, s in stats.items()]
    return "\n".join(lines) + "\n"
