"""Camera ingest over HTTP: edge boxes push JPEG frames, and monitoring reads the per-camera
counters (JSON, and Prometheus text for scraping) with `VIGIL_CAMERA_METRICS_TOKEN` (open only in
demo mode without one: they list every tenant's cameras and their tamper state).

A pushed frame is checked at the boundary (the edge box's token and the cameras it covers, the
camera, content type, size, that it really is a JPEG that decodes, its timestamp) and then goes
through the same gate and tamper checks as a pulled one. Every refusal past the token is an HTTP
error with a reason and a dead letter.
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

from ingest.camera.push_auth import PushCredential
from vigil.events import ID_PATTERN, MIN_TS_MS
from vigil.frames import JPEG_MAGIC, MAX_FRAME_PIXELS, MAX_FRAME_SIDE, image_size
from vigil.http import BodyLimit
from vigil.settings import Settings

if TYPE_CHECKING:
    from ingest.camera.service import CameraIngest

# Only frames carry a body; anything else sent with one is refused before it is read.
_NO_BODY_LIMIT = 64 * 1024

_bearer = HTTPBearer(auto_error=False, description="The edge box's push token (`vigil cameras token issue`)")


def create_camera_app(ingest: CameraIngest, settings: Settings) -> FastAPI:
    max_bytes = settings.frame_max_bytes
    max_skew_ms = int(settings.ingest_max_clock_skew_s * 1000)
    metrics_token = (
        settings.require_secret("camera_metrics_token").encode() if settings.camera_metrics_token else None
    )
    open_stats = settings.demo and metrics_token is None
    app = FastAPI(title="Vigil camera ingest", docs_url=None, redoc_url=None)
    # Before the credential and the route: a frame gets twice its limit here, so an edge box a little
    # over it still meets the route's own exact check, which dead-letters with the camera's id;
    # anything far over it, or any body on another route, is cut off unread.
    app.add_middleware(
        BodyLimit,
        limit_for=lambda path: 2 * max_bytes if path.endswith("/frames") else _NO_BODY_LIMIT,
    )

    async def edge(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> None:
        credential = None
        if credentials is not None:
            credential = await ingest.push_credentials.authenticate(credentials.credentials)
        if credential is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "a valid push token is required",
                headers={"WWW-Authenticate": "Bearer"},
            )
        # On the request, not as a parameter: a dependency defined in this function cannot be named
        # in an annotation that FastAPI resolves against the module's globals.
        request.state.push_credential = credential

    async def monitoring(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> None:
        if open_stats:
            return
        if metrics_token is None:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, "camera stats are off: set VIGIL_CAMERA_METRICS_TOKEN to read them"
            )
        if credentials is None or not hmac.compare_digest(credentials.credentials.encode(), metrics_token):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "a valid metrics token is required",
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
        # Before the registry is asked: a box learns nothing of cameras its token does not cover.
        credential: PushCredential = request.state.push_credential
        if not credential.covers(camera_id):
            raise await refuse(
                camera_id,
                403,
                "camera_not_covered",
                f"{credential.label} does not cover camera {camera_id!r}",
            )
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

    @app.get("/v1/cameras/stats", dependencies=[Depends(monitoring)])
    async def camera_stats() -> dict[str, Any]:
        return {"cameras": ingest.stats()}

    @app.get("/metrics", response_class=PlainTextResponse, dependencies=[Depends(monitoring)])
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
