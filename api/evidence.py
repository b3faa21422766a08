"""Evidence images of an alert, served only to whoever may see the alert.

An image is fetched by a SHA-256 the alert references: its own snapshot or frame, one of its
occurrences', or a photo of one of its rectifications. So a caller cannot enumerate the store: a
hash that the alert does not reference is a 404, whether or not the file exists. Operators see
every alert; an enterprise sees its own, and another enterprise's alert is a 404 (never a 403, so
it does not learn that the alert exists). Served as image/jpeg with nosniff, never as anything the
browser runs (rectification photos are re-encoded to JPEG before they are stored).

Event clips (WebM, made by camera ingest) follow the same rules: `…/clips/{sha256}` for a clip the
alert or one of its occurrences references, `…/clip` for the alert's current clip (the stable link
a notice carries, written before the clip exists: 404 until it does).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request, Response, status
from fastapi.responses import FileResponse

from api.alert_query import references_image, scope
from api.auth import AUTH_ERRORS, Authenticated
from api.deps import ACQUIRE_TIMEOUT_S, Pool
from api.models import ErrorBody
from api.params import AlertId
from vigil.evidence import SHA256_PATTERN, EvidenceStore

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])


@router.get(
    "/{alert_id}/evidence/{sha256}",
    responses={
        **AUTH_ERRORS,
        200: {"content": {"image/jpeg": {}}, "description": "the image"},
        403: {"model": ErrorBody, "description": "an enterprise credential without an enterprise"},
        404: {
            "model": ErrorBody,
            "description": "no such alert (or not the caller's), or no such image on it",
            "content": {"application/json": {"example": {"detail": "no such snapshot on this alert"}}},
        },
    },
    response_class=Response,
    summary="An evidence snapshot or rectification photo of an alert (JPEG, addressed by its SHA-256)",
    description="Operators may fetch any alert's images; an enterprise only its own alerts'.",
)
async def get_evidence(
    principal: Authenticated,
    pool: Pool,
    request: Request,
    alert_id: AlertId,
    sha256: Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")],
) -> Response:
    enterprise_id = scope(principal)
    store: EvidenceStore | None = request.app.state.evidence
    referenced = await references_image(pool, alert_id, sha256, tenant=enterprise_id)
    jpeg = store.get(sha256) if store is not None and referenced else None
    if jpeg is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such snapshot on this alert")
    return Response(
        jpeg,
        media_type="image/jpeg",
        headers={
            "X-Content-Type-Options": "nosniff",
            "Content-Disposition": f'inline; filename="{sha256}.jpg"',
            # Content-addressed: the bytes behind this URL never change.
            "Cache-Control": "private, max-age=31536000, immutable",
        },
    )


# The alert (in the caller's tenancy) references the clip: its own evidence or an occurrence's.
_CLIP_OF_ALERT = (
    "SELECT a.evidence ->> 'clip_sha256' FROM alerts a WHERE a.alert_id = %(alert)s"
    " AND (%(tenant)s::text IS NULL OR a.enterprise_id = %(tenant)s)"
)
_REFERENCES_CLIP = (
    "SELECT 1 FROM alerts a WHERE a.alert_id = %(alert)s"
    " AND (%(tenant)s::text IS NULL OR a.enterprise_id = %(tenant)s)"
    " AND (a.evidence ->> 'clip_sha256' = %(sha)s OR EXISTS (SELECT 1 FROM alert_violations v"
    " WHERE v.alert_id = a.alert_id AND v.evidence ->> 'clip_sha256' = %(sha)s))"
)
_CLIP_RESPONSES: dict[int | str, dict[str, object]] = {
    **AUTH_ERRORS,
    200: {"content": {"video/webm": {}}, "description": "the clip (VP8 WebM); byte ranges are served"},
    403: {"model": ErrorBody, "description": "an enterprise credential without an enterprise"},
    404: {"model": ErrorBody, "description": "no such alert (or not the caller's), or no such clip on it"},
}


def _clip_response(request: Request, sha256: str | None) -> FileResponse:
    store: EvidenceStore | None = request.app.state.evidence
    valid = sha256 is not None and SHA256_PATTERN.fullmatch(sha256) is not None
    path = store.clip_path(sha256) if store is not None and sha256 is not None and valid else None
    if path is None or not path.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such clip on this alert")
    # A file response: the browser's <video> asks for byte ranges, and the clip is never in memory.
    return FileResponse(
        path,
        media_type="video/webm",
        headers={
            "X-Content-Type-Options": "nosniff",
            "Content-Disposition": f'inline; filename="{sha256}.webm"',
            "Cache-Control": "private, max-age=31536000, immutable",
        },
    )


@router.get(
    "/{alert_id}/clips/{sha256}",
    responses=_CLIP_RESPONSES,
    response_class=FileResponse,
    summary="An event clip of an alert (WebM, addressed by its SHA-256)",
    description="Operators may fetch any alert's clips; an enterprise only its own alerts'.",
)
async def get_clip(
    principal: Authenticated,
    pool: Pool,
    request: Request,
    alert_id: AlertId,
    sha256: Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")],
) -> FileResponse:
    params = {"alert": alert_id, "tenant": scope(principal), "sha": sha256}
    async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn:
        referenced = await (await conn.execute(_REFERENCES_CLIP, params)).fetchone() is not None
    return _clip_response(request, sha256 if referenced else None)


@router.get(
    "/{alert_id}/clip",
    responses=_CLIP_RESPONSES,
    response_class=FileResponse,
    summary="The current event clip of an alert (WebM)",
    description="The link notices carry: 404 until camera ingest has made the clip.",
)
async def get_current_clip(
    principal: Authenticated, pool: Pool, request: Request, alert_id: AlertId
) -> FileResponse:
    params = {"alert": alert_id, "tenant": scope(principal)}
    async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn:
        row = await (await conn.execute(_CLIP_OF_ALERT, params)).fetchone()
    return _clip_response(request, row[0] if row else None)
