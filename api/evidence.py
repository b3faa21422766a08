"""Evidence snapshots of an alert, served only to whoever may see the alert.

A snapshot is fetched by the SHA-256 recorded on the alert (or on one of its occurrences), so a
caller cannot enumerate the store: a hash that the alert does not reference is a 404, whether or
not the file exists. Served as image/jpeg with nosniff, never as anything the browser runs.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request, Response, status

from api.alerts import _ALERT_ID_PATTERN, _AUTH_ERRORS, ACQUIRE_TIMEOUT_S
from api.auth import Operator
from api.deps import Pool
from api.models import ErrorBody
from vigil.evidence import EvidenceStore

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])


@router.get(
    "/{alert_id}/evidence/{sha256}",
    responses={
        **_AUTH_ERRORS,
        200: {"content": {"image/jpeg": {}}, "description": "the snapshot"},
        404: {"model": ErrorBody, "description": "no such alert, or no such snapshot on it"},
    },
    response_class=Response,
    summary="An evidence snapshot of an alert (JPEG, addressed by its SHA-256)",
)
async def get_evidence(
    _principal: Operator,
    pool: Pool,
    request: Request,
    alert_id: Annotated[str, Path(pattern=_ALERT_ID_PATTERN)],
    sha256: Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")],
) -> Response:
    store: EvidenceStore | None = request.app.state.evidence
    async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn:
        cur = await conn.execute(
            "SELECT 1 FROM alerts a WHERE a.alert_id = %(a)s AND (a.evidence ->> 'snapshot_sha256' = %(s)s"
            " OR a.evidence ->> 'frame_sha256' = %(s)s OR EXISTS (SELECT 1 FROM alert_violations v"
            " WHERE v.alert_id = a.alert_id AND (v.evidence ->> 'snapshot_sha256' = %(s)s"
            " OR v.evidence ->> 'frame_sha256' = %(s)s)))",
            {"a": alert_id, "s": sha256},
        )
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
