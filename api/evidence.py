"""Evidence images of an alert, served only to whoever may see the alert.

An image is fetched by a SHA-256 the alert references: its own snapshot or frame, one of its
occurrences', or a photo of one of its rectifications. So a caller cannot enumerate the store: a
hash that the alert does not reference is a 404, whether or not the file exists. Operators see
every alert; an enterprise sees its own, and another enterprise's alert is a 404 (never a 403, so
it does not learn that the alert exists). Served as image/jpeg with nosniff, never as anything the
browser runs (rectification photos are re-encoded to JPEG before they are stored).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request, Response, status

from api.alert_query import references_image, scope
from api.auth import AUTH_ERRORS, Authenticated
from api.deps import Pool
from api.models import ErrorBody
from api.params import AlertId
from vigil.evidence import EvidenceStore

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
