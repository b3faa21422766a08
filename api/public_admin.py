"""Publishing a site's public kitchen window (api/public.py): its link and QR code, its cameras.

One set of routes for the bureau and the enterprise, scoped as the live view is: operators and
supervisors act on any site, an enterprise on its own (another's site or camera is a 404, as if it
did not exist). `POST …/public-window` issues the site's link and answers it once: only the token's
SHA-256 is stored (migration 0016), as for API keys, so the enterprise keeps the link (or its
printed QR code) and a new POST replaces it, ending the old link at once. The QR routes therefore
take the token back, in a POST body (a query string would land in proxies' access logs), and draw
it only if it is the site's current one. `DELETE …/public-window`
ends the link and unpublishes every camera of the site; viewers' streams end within seconds.

Every change (published, republished, unpublished, a camera added or removed) is written to
`public_window_audit` (migration 0017) in the change's own transaction, with who and when;
`GET …/public-window/audit` reads it back, newest first. An enterprise reads only what happened
while the site was its own, and a bureau member's name there is only "the bureau", as in its alert
history (api/enterprise/view.py).
"""

from __future__ import annotations

import io
import secrets
from datetime import datetime
from typing import Annotated, Any, Literal

import segno
from fastapi import APIRouter, HTTPException, Path, Query, Response, status
from psycopg import AsyncConnection
from pydantic import BaseModel, ConfigDict, Field

from api.alert_query import scope
from api.auth import AUTH_ERRORS, Authenticated, Principal
from api.deps import ACQUIRE_TIMEOUT_S, Pool
from api.enterprise.view import Actor, actor_kind
from api.models import ErrorBody
from api.params import ID_PATTERN
from api.public import TOKEN_PATTERN, token_sha256
from vigil.settings import Settings

SiteId = Annotated[str, Path(pattern=ID_PATTERN)]
CameraId = Annotated[str, Path(pattern=ID_PATTERN)]


class QrRequest(BaseModel):
    """The link's token in the body, never in the query: a query string lands in access logs."""

    model_config = ConfigDict(extra="forbid")
    token: Annotated[str, Field(pattern=TOKEN_PATTERN, description="the token publishing answered")]


_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "no such site or camera (or not the caller's)"}
}
# QR modules drawn this many pixels wide, and the quiet zone the standard asks for: about 5 cm of
# print at 300 dpi for a 33-module code, readable by a phone from a metre.
QR_SCALE, QR_BORDER = 16, 4
_BINARY = {"type": "string", "format": "binary"}
Action = Literal["published", "republished", "unpublished", "camera_added", "camera_removed"]
AuditLimit = Annotated[int, Query(ge=1, le=500)]


class PublicWindow(BaseModel):
    site_id: str
    published: bool  # the site has a public link
    issued_at: datetime | None
    cameras: list[str]  # shown on the page (when the site has a link)
    site_cameras: list[str]  # the site's enabled cameras: those that may be shown


class PublicWindowEvent(BaseModel):
    at: datetime
    action: Action
    camera_id: str | None  # for camera_added and camera_removed
    by: Actor
    actor: str | None  # who exactly; for an enterprise caller only its own people's names


class PublicWindowAudit(BaseModel):
    items: list[PublicWindowEvent]  # newest first


class PublicLink(PublicWindow):
    token: str  # shown once: only its SHA-256 is kept
    url: str


async def _site(pool: Pool, site_id: str, principal: Principal) -> str:
    """The site's enterprise; 404 unless the site exists and is the caller's to manage."""
    tenant = scope(principal)
    async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn:
        cur = await conn.execute(
            "SELECT enterprise_id FROM sites WHERE site_id = %s AND (%s::text IS NULL OR enterprise_id = %s)",
            (site_id, tenant, tenant),
        )
        row = await cur.fetchone()
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such site")
    return str(row[0])


async def _audit(
    conn: AsyncConnection[Any],
    site_id: str,
    enterprise_id: str,
    principal: Principal,
    action: Action,
    camera_id: str | None = None,
) -> None:
    await conn.execute(
        "INSERT INTO public_window_audit (site_id, enterprise_id, actor, action, camera_id)"
        " VALUES (%s, %s, %s, %s, %s)",
        (site_id, enterprise_id, principal.actor, action, camera_id),
    )


async def _window(pool: Pool, site_id: str) -> PublicWindow:
    async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn:
        cur = await conn.execute(
            "SELECT (SELECT issued_at FROM public_windows WHERE site_id = %s),"
            " ARRAY(SELECT camera_id FROM public_cameras WHERE site_id = %s ORDER BY camera_id),"
            " ARRAY(SELECT camera_id FROM cameras WHERE site_id = %s AND enabled ORDER BY camera_id)",
            (site_id, site_id, site_id),
        )
        row = await cur.fetchone()
    assert row is not None
    return PublicWindow(
        site_id=site_id, published=row[0] is not None, issued_at=row[0], cameras=row[1], site_cameras=row[2]
    )


def make_router(settings: Settings) -> APIRouter:
    router = APIRouter(prefix="/api/v1/sites/{site_id}/public-window", tags=["public window"])
    base = settings.public_url.rstrip("/")

    def link(token: str) -> str:
        return f"{base}/public/w/{token}"

    @router.get(
        "",
        summary="A site's public kitchen window: whether it has a link, and the cameras shown",
        responses={**AUTH_ERRORS, **_NOT_FOUND},
    )
    async def show(principal: Authenticated, pool: Pool, site_id: SiteId) -> PublicWindow:
        await _site(pool, site_id, principal)
        return await _window(pool, site_id)

    @router.post(
        "",
        summary="Issue (or replace) the site's public link; the token is shown only in this answer",
        responses={**AUTH_ERRORS, **_NOT_FOUND},
    )
    async def issue(principal: Authenticated, pool: Pool, site_id: SiteId) -> PublicLink:
        enterprise_id = await _site(pool, site_id, principal)
        token = secrets.token_urlsafe(24)  # 192 bits: TOKEN_PATTERN
        async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
            # xmax is 0 on a row this statement inserted, not on one it updated: a first
            # publication or a replaced link, told apart atomically (no read-then-write race).
            cur = await conn.execute(
                "INSERT INTO public_windows (site_id, token_sha256, issued_by) VALUES (%s, %s, %s)"
                " ON CONFLICT (site_id) DO UPDATE SET token_sha256 = EXCLUDED.token_sha256,"
                " issued_at = now(), issued_by = EXCLUDED.issued_by RETURNING xmax = 0",
                (site_id, token_sha256(token), principal.actor),
            )
            inserted = await cur.fetchone()
            action: Action = "published" if inserted and inserted[0] else "republished"
            await _audit(conn, site_id, enterprise_id, principal, action)
        window = await _window(pool, site_id)
        return PublicLink(**window.model_dump(), token=token, url=link(token))

    @router.delete(
        "",
        status_code=status.HTTP_204_NO_CONTENT,
        summary="End the site's public link and unpublish its cameras, at once",
        responses={**AUTH_ERRORS, **_NOT_FOUND},
    )
    async def revoke(principal: Authenticated, pool: Pool, site_id: SiteId) -> Response:
        enterprise_id = await _site(pool, site_id, principal)
        async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
            cur = await conn.execute(
                "DELETE FROM public_cameras WHERE site_id = %s RETURNING camera_id", (site_id,)
            )
            # Each camera's own row too, so a camera's history reads whole without the site's.
            for (camera_id,) in sorted(await cur.fetchall()):
                await _audit(conn, site_id, enterprise_id, principal, "camera_removed", camera_id)
            cur = await conn.execute("DELETE FROM public_windows WHERE site_id = %s RETURNING 1", (site_id,))
            if await cur.fetchone() is not None:
                await _audit(conn, site_id, enterprise_id, principal, "unpublished")
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @router.put(
        "/cameras/{camera_id}",
        status_code=status.HTTP_204_NO_CONTENT,
        summary="Show a camera of the site on its public page",
        responses={**AUTH_ERRORS, **_NOT_FOUND},
    )
    async def publish(principal: Authenticated, pool: Pool, site_id: SiteId, camera_id: CameraId) -> Response:
        enterprise_id = await _site(pool, site_id, principal)
        async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
            cur = await conn.execute(
                "INSERT INTO public_cameras (camera_id, site_id, published_by)"
                " SELECT camera_id, site_id, %s FROM cameras WHERE camera_id = %s AND site_id = %s"
                " ON CONFLICT (camera_id) DO UPDATE SET site_id = EXCLUDED.site_id RETURNING xmax = 0",
                (principal.actor, camera_id, site_id),
            )
            row = await cur.fetchone()
            if row is None:
                raise HTTPException(status.HTTP_404_NOT_FOUND, "no such camera on this site")
            if row[0]:  # newly shown; ticking an already public camera again changes nothing
                await _audit(conn, site_id, enterprise_id, principal, "camera_added", camera_id)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @router.delete(
        "/cameras/{camera_id}",
        status_code=status.HTTP_204_NO_CONTENT,
        summary="Stop showing a camera; its public viewers' streams end within seconds",
        responses={**AUTH_ERRORS, **_NOT_FOUND},
    )
    async def unpublish(
        principal: Authenticated, pool: Pool, site_id: SiteId, camera_id: CameraId
    ) -> Response:
        enterprise_id = await _site(pool, site_id, principal)
        async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
            cur = await conn.execute(
                "DELETE FROM public_cameras WHERE camera_id = %s AND site_id = %s RETURNING 1",
                (camera_id, site_id),
            )
            if await cur.fetchone() is not None:
                await _audit(conn, site_id, enterprise_id, principal, "camera_removed", camera_id)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @router.get(
        "/audit",
        summary="Who published, re-published or unpublished the window, or changed its cameras; newest first",
        responses={**AUTH_ERRORS, **_NOT_FOUND},
    )
    async def audit(
        principal: Authenticated, pool: Pool, site_id: SiteId, limit: AuditLimit = 100
    ) -> PublicWindowAudit:
        await _site(pool, site_id, principal)
        tenant = scope(principal)
        async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn:
            cur = await conn.execute(
                "SELECT at, action, camera_id, actor FROM public_window_audit WHERE site_id = %s"
                " AND (%s::text IS NULL OR enterprise_id = %s) ORDER BY audit_id DESC LIMIT %s",
                (site_id, tenant, tenant, limit),
            )
            rows = await cur.fetchall()
        items = []
        for at, action, camera_id, actor in rows:
            by = actor_kind(actor)
            shown = actor if tenant is None or by == "enterprise" else None
            items.append(PublicWindowEvent(at=at, action=action, camera_id=camera_id, by=by, actor=shown))
        return PublicWindowAudit(items=items)

    async def qr(principal: Principal, pool: Pool, site_id: str, token: str) -> segno.QRCode:
        await _site(pool, site_id, principal)
        async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn:
            cur = await conn.execute(
                "SELECT 1 FROM public_windows WHERE site_id = %s AND token_sha256 = %s",
                (site_id, token_sha256(token)),
            )
            if await cur.fetchone() is None:
                raise HTTPException(status.HTTP_404_NOT_FOUND, "not the site's current public link")
        # Error correction Q (25%): a code on a kitchen door gets greasy and scratched.
        return segno.make(link(token), error="q", micro=False)

    image: dict[int | str, dict[str, Any]] = {**AUTH_ERRORS, **_NOT_FOUND}

    @router.post(
        "/qr.png",
        summary="The public link as a QR code (PNG), for printing at the door",
        response_class=Response,
        responses={**image, 200: {"content": {"image/png": {"schema": _BINARY}}}},
    )
    async def qr_png(principal: Authenticated, pool: Pool, site_id: SiteId, body: QrRequest) -> Response:
        out = io.BytesIO()
        (await qr(principal, pool, site_id, body.token)).save(
            out, kind="png", scale=QR_SCALE, border=QR_BORDER
        )
        return Response(out.getvalue(), media_type="image/png", headers={"Cache-Control": "no-store"})

    @router.post(
        "/qr.svg",
        summary="The public link as a QR code (SVG), for printing at any size",
        response_class=Response,
        responses={**image, 200: {"content": {"image/svg+xml": {"schema": {"type": "string"}}}}},
    )
    async def qr_svg(principal: Authenticated, pool: Pool, site_id: SiteId, body: QrRequest) -> Response:
        out = io.BytesIO()
        (await qr(principal, pool, site_id, body.token)).save(
            out, kind="svg", scale=QR_SCALE, border=QR_BORDER
        )
        return Response(out.getvalue(), media_type="image/svg+xml", headers={"Cache-Control": "no-store"})

    return router
