"""Publishing a site's public kitchen window (api/public.py): its link and QR code, its cameras.

One set of routes for the bureau and the enterprise, scoped as the live view is: operators and
supervisors act on any site, an enterprise on its own (another's site or camera is a 404, as if it
did not exist). `POST …/public-window` issues the site's link and answers it once: only the token's
SHA-256 is stored (migration 0016), as for API keys, so the enterprise keeps the link (or its
printed QR code) and a new POST replaces it, ending the old link at once. The QR routes therefore
take the token back and draw it only if it is the site's current one. `DELETE …/public-window`
ends the link and unpublishes every camera of the site; viewers' streams end within seconds.
"""

from __future__ import annotations

import io
import secrets
from datetime import datetime
from typing import Annotated, Any

import segno
from fastapi import APIRouter, HTTPException, Path, Query, Response, status
from pydantic import BaseModel

from api.alert_query import scope
from api.auth import AUTH_ERRORS, Authenticated, Principal
from api.deps import ACQUIRE_TIMEOUT_S, Pool
from api.models import ErrorBody
from api.params import ID_PATTERN
from api.public import TOKEN_PATTERN, token_sha256
from vigil.settings import Settings

SiteId = Annotated[str, Path(pattern=ID_PATTERN)]
CameraId = Annotated[str, Path(pattern=ID_PATTERN)]
Token = Annotated[str, Query(pattern=TOKEN_PATTERN, description="the token POST answered")]
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "no such site or camera (or not the caller's)"}
}
# QR modules drawn this many pixels wide, and the quiet zone the standard asks for: about 5 cm of
# print at 300 dpi for a 33-module code, readable by a phone from a metre.
QR_SCALE, QR_BORDER = 16, 4
_BINARY = {"type": "string", "format": "binary"}


class PublicWindow(BaseModel):
    site_id: str
    published: bool  # the site has a public link
    issued_at: datetime | None
    cameras: list[str]  # shown on the page (when the site has a link)


class PublicLink(PublicWindow):
    token: str  # shown once: only its SHA-256 is kept
    url: str


async def _site(pool: Pool, site_id: str, principal: Principal) -> None:
    """404 unless the site exists and is the caller's to manage."""
    tenant = scope(principal)
    async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn:
        cur = await conn.execute(
            "SELECT 1 FROM sites WHERE site_id = %s AND (%s::text IS NULL OR enterprise_id = %s)",
            (site_id, tenant, tenant),
        )
        if await cur.fetchone() is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such site")


async def _window(pool: Pool, site_id: str) -> PublicWindow:
    async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn:
        cur = await conn.execute(
            "SELECT (SELECT issued_at FROM public_windows WHERE site_id = %s),"
            " ARRAY(SELECT camera_id FROM public_cameras WHERE site_id = %s ORDER BY camera_id)",
            (site_id, site_id),
        )
        row = await cur.fetchone()
    assert row is not None
    return PublicWindow(site_id=site_id, published=row[0] is not None, issued_at=row[0], cameras=row[1])


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
        await _site(pool, site_id, principal)
        token = secrets.token_urlsafe(24)  # 192 bits: TOKEN_PATTERN
        async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO public_windows (site_id, token_sha256, issued_by) VALUES (%s, %s, %s)"
                " ON CONFLICT (site_id) DO UPDATE SET token_sha256 = EXCLUDED.token_sha256,"
                " issued_at = now(), issued_by = EXCLUDED.issued_by",
                (site_id, token_sha256(token), principal.actor),
            )
        window = await _window(pool, site_id)
        return PublicLink(**window.model_dump(), token=token, url=link(token))

    @router.delete(
        "",
        status_code=status.HTTP_204_NO_CONTENT,
        summary="End the site's public link and unpublish its cameras, at once",
        responses={**AUTH_ERRORS, **_NOT_FOUND},
    )
    async def revoke(principal: Authenticated, pool: Pool, site_id: SiteId) -> Response:
        await _site(pool, site_id, principal)
        async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
            await conn.execute("DELETE FROM public_cameras WHERE site_id = %s", (site_id,))
            await conn.execute("DELETE FROM public_windows WHERE site_id = %s", (site_id,))
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @router.put(
        "/cameras/{camera_id}",
        status_code=status.HTTP_204_NO_CONTENT,
        summary="Show a camera of the site on its public page",
        responses={**AUTH_ERRORS, **_NOT_FOUND},
    )
    async def publish(principal: Authenticated, pool: Pool, site_id: SiteId, camera_id: CameraId) -> Response:
        await _site(pool, site_id, principal)
        async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
            cur = await conn.execute(
                "INSERT INTO public_cameras (camera_id, site_id, published_by)"
                " SELECT camera_id, site_id, %s FROM cameras WHERE camera_id = %s AND site_id = %s"
                " ON CONFLICT (camera_id) DO UPDATE SET site_id = EXCLUDED.site_id RETURNING 1",
                (principal.actor, camera_id, site_id),
            )
            if await cur.fetchone() is None:
                raise HTTPException(status.HTTP_404_NOT_FOUND, "no such camera on this site")
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
        await _site(pool, site_id, principal)
        async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
            await conn.execute(
                "DELETE FROM public_cameras WHERE camera_id = %s AND site_id = %s", (camera_id, site_id)
            )
        return Response(status_code=status.HTTP_204_NO_CONTENT)

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

    @router.get(
        "/qr.png",
        summary="The public link as a QR code (PNG), for printing at the door",
        response_class=Response,
        responses={**image, 200: {"content": {"image/png": {"schema": _BINARY}}}},
    )
    async def qr_png(principal: Authenticated, pool: Pool, site_id: SiteId, token: Token) -> Response:
        out = io.BytesIO()
        (await qr(principal, pool, site_id, token)).save(out, kind="png", scale=QR_SCALE, border=QR_BORDER)
        return Response(out.getvalue(), media_type="image/png", headers={"Cache-Control": "no-store"})

    @router.get(
        "/qr.svg",
        summary="The public link as a QR code (SVG), for printing at any size",
        response_class=Response,
        responses={**image, 200: {"content": {"image/svg+xml": {"schema": {"type": "string"}}}}},
    )
    async def qr_svg(principal: Authenticated, pool: Pool, site_id: SiteId, token: Token) -> Response:
        out = io.BytesIO()
        (await qr(principal, pool, site_id, token)).save(out, kind="svg", scale=QR_SCALE, border=QR_BORDER)
        return Response(out.getvalue(), media_type="image/svg+xml", headers={"Cache-Control": "no-store"})

    return router
