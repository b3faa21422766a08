"""The monitoring-centre dashboard and the enterprise page, served from packaged static files.

`/` and `/dashboard` redirect to `/dashboard/`, which (like `/dashboard/enterprise`) is the one HTML
shell; its scripts, styles and the vendored chart library are under `/dashboard/assets/`. Nothing is
fetched from elsewhere, so the dashboard works on a closed network.

Every file is read once, at import, into a table keyed by its path: a request can only ever name
one of those files (no path is joined onto the file system), and answers carry an ETag. The pages
run under a strict Content-Security-Policy: scripts and styles from this origin only, no inline
script, images from this origin or `blob:` (evidence photos are fetched with the bearer header and
shown as blob URLs), requests to this origin only, and never framed.
"""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from urllib.parse import urlsplit

from fastapi import APIRouter, HTTPException, Path, Request, Response, status
from fastapi.responses import RedirectResponse

router = APIRouter(tags=["dashboard"], include_in_schema=False)


def content_security_policy(tile_url: str | None = None) -> str:
    """The dashboard's policy. Map tiles from a bureau's own tile server (VIGIL_MAP_TILE_URL on
    another origin) are the one outside source it allows, as images only."""
    tiles = ""
    if tile_url and tile_url.startswith(("https://", "http://")):
        parts = urlsplit(tile_url)
        tiles = f" {parts.scheme}://{parts.netloc}"
    return "; ".join(
        (
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            f"img-src 'self' blob:{tiles}",
            # Event clips play from blob URLs (js/clip.js fetches them with the bearer header).
            "media-src blob:",
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        )
    )


CONTENT_SECURITY_POLICY = content_security_policy()
_SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    # No build step, so no content-hashed names: revalidate every time (cheap, with the ETag).
    "Cache-Control": "no-cache",
}
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}
# Licences and notices of the vendored libraries.
_TEXT_NAMES = frozenset({"LICENSE", "NOTICE"})
# Views of the single-page shell: the operators' dashboard and the enterprise page.
_SHELL_PATHS = ("/dashboard/", "/dashboard/enterprise")


@dataclass(frozen=True, slots=True)
class StaticFile:
    body: bytes
    media_type: str
    etag: str


def _load(root: Traversable, prefix: str = "") -> dict[str, StaticFile]:
    files: dict[str, StaticFile] = {}
    for entry in root.iterdir():
        name = f"{prefix}{entry.name}"
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            files.update(_load(entry, f"{name}/"))
            continue
        suffix = "." + entry.name.rsplit(".", 1)[-1] if "." in entry.name else ""
        media_type = (
            _TYPES.get(suffix)
            or mimetypes.guess_type(entry.name)[0]
            or ("text/plain" if entry.name in _TEXT_NAMES else "application/octet-stream")
        )
        if media_type.startswith("text/") and "charset" not in media_type:
            media_type += "; charset=utf-8"
        body = entry.read_bytes()
        files[name] = StaticFile(body, media_type, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')
    return files


def load_static() -> dict[str, StaticFile]:
    """Every packaged dashboard file by its path under `api/static` (e.g. `js/app.js`)."""
    root = resources.files("api") / "static"
    return _load(root) if root.is_dir() else {}


STATIC = load_static()


def _serve(request: Request, name: str) -> Response:
    found = STATIC.get(name)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "not found")
    policy = getattr(request.app.state, "content_security_policy", CONTENT_SECURITY_POLICY)
    headers = {**_SECURITY_HEADERS, "Content-Security-Policy": policy, "ETag": found.etag}
    if found.etag in request.headers.get("if-none-match", ""):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return Response(found.body, media_type=found.media_type, headers=headers)


# Relative redirects: behind a proxy that mounts Vigil under a path prefix they still land right.
@router.get("/")
async def root() -> RedirectResponse:
    return RedirectResponse("dashboard/", status_code=status.HTTP_307_TEMPORARY_REDIRECT)


@router.get("/dashboard")
async def dashboard_bare() -> RedirectResponse:
    return RedirectResponse("dashboard/", status_code=status.HTTP_307_TEMPORARY_REDIRECT)


@router.get(_SHELL_PATHS[0])
@router.get(_SHELL_PATHS[1])
async def shell(request: Request) -> Response:
    return _serve(request, "index.html")


@router.get("/dashboard/assets/{name:path}")
async def asset(request: Request, name: str = Path(max_length=200)) -> Response:
    # Only a file in the table is served: a name with `..` or any other path simply is not in it.
    if name == "index.html":
        raise HTTPException(status.HTTP_404_NOT_FOUND, "not found")
    return _serve(request, name)
