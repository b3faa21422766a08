"""Evidence images of an alert, served only to whoever may see the alert.

An image is fetched by a SHA-256 the alert references: its own snapshot or frame, one of its
occurrences', or a photo of one of its rectifications. So a caller cannot enumerate the store: a
hash that the alert does not reference is a 404, whether or not the file exists. Operators see
every alert; an enterprise sees its own, and another enterprise's alert is a 404 (never a 403, so
it does not learn that the alert exists). Served as image/jpeg with nosniff, never as anything the
browser runs (rectification photos are re-encoded to JPEG before they are stored).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request, Response, status

from api.alerts import _ALERT_ID_PATTERN, _AUTH_ERRORS, ACQUIRE_TIMEOUT_S
from api.auth import Authenticated, Principal
from api.deps import Pool
from api.models import ErrorBody
from vigil.evidence import EvidenceStore

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])

# The alert references the hash, and the caller may see the alert (%(e)s NULL: bureau staff).
_REFERENCED = (
    "SELECT 1 FROM alerts a WHERE a.alert_id = %(a)s"
    " AND (%(e)s::text IS NULL OR a.enterprise_id = %(e)s)"
    " AND (a.evidence ->> 'snapshot_sha256' = %(s)s OR a.evidence ->> 'frame_sha256' = %(s)s"
    " OR EXISTS (SELECT 1 FROM alert_violations v WHERE v.alert_id = a.alert_id"
    " AND (v.evidence ->> 'snapshot_sha256' = %(s)s OR v.evidence ->> 'frame_sha256' = %(s)s))"
    " OR EXISTS (SELECT 1 FROM rectifications r WHERE r.alert_id = a.alert_id AND r.photos ? %(s)s))"
)


def _scope(principal: Principal) -> str | None:
    """The enterprise the caller is confined to; None for the bureau's staff, who see every one."""
    if principal.role in ("operator", "supervisor"):
        return None
    if principal.enterprise_id is None:  # an enterprise credential always names its enterprise
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this credential is not bound to an enterprise")
    return principal.enterprise_id


@router.get(
    "/{alert_id}/evidence/{sha256}",
    responses={
        **_AUTH_ERRORS,
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
    alert_id: Annotated[str, Path(pattern=_ALERT_ID_PATTERN)],
    sha256: Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")],
) -> Response:
    enterprise_id = _scope(principal)
    store: EvidenceStore | None = request.app.state.evidence
    async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn:
        cur = await conn.execute(_REFERENCED, {"a": alert_id, "e": enterprise_id, "s": sha256})
        referenced: Any = await cur.fetchone()
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
