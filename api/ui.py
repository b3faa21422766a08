"""What the dashboard needs besides the API proper: its message catalogue, its configuration, and
the display names of the caller's own enterprise and sites.

- `GET /api/v1/ui/messages?lang=zh-CN|en`: the `ui` catalogue (vigil/data/i18n/<lang>/ui.json)
  as it is, a flat object of dotted keys to texts with `{name}` placeholders. Public: the sign-in
  page is translated before anyone signs in, and the texts are the same for everyone.
- `GET /api/v1/ui/config`: the bureau's time zone (`VIGIL_TIMEZONE`) that every date is shown in,
  the languages and the default one, and whether the sign-in page offers single sign-on (api/oidc.py).
- `GET /api/v1/ui/names`: an enterprise key's own enterprise and site names (the registry routes
  are the bureau's; staff read names there). Staff get an empty answer.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request, Response, status
from pydantic import BaseModel

from api.auth import Authenticated
from api.deps import ACQUIRE_TIMEOUT_S, Pool
from vigil.i18n import DEFAULT_LANGUAGE, LANGUAGES, Language, catalogue
from vigil.settings import Settings

DOMAIN = "ui"


class UiConfig(BaseModel):
    timezone: str
    languages: list[str]
    default_language: str
    single_sign_on: bool = False


class SiteName(BaseModel):
    name: str
    district: str | None
    enterprise_id: str


class Names(BaseModel):
    enterprises: dict[str, str]
    sites: dict[str, SiteName]


def _messages(language: Language) -> tuple[bytes, str]:
    body = orjson.dumps(dict(catalogue(language, DOMAIN)), option=orjson.OPT_SORT_KEYS)
    return body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def make_router(settings: Settings) -> APIRouter:
    """The routes, bound to the settings' time zone."""
    router = APIRouter(prefix="/api/v1/ui", tags=["dashboard"], include_in_schema=False)
    config = UiConfig(
        timezone=settings.timezone,
        languages=list(LANGUAGES),
        default_language=DEFAULT_LANGUAGE,
        single_sign_on=settings.oidc_issuer is not None,
    )

    @router.get("/messages")
    async def messages(request: Request, lang: Annotated[Language, Query()] = DEFAULT_LANGUAGE) -> Response:
        body, etag = _messages(lang)
        headers = {"ETag": etag, "Cache-Control": "no-cache", "Content-Language": lang}
        if etag in request.headers.get("if-none-match", ""):
            return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
        return Response(body, media_type="application/json", headers=headers)

    @router.get("/config")
    async def ui_config() -> UiConfig:
        return config

    @router.get("/names")
    async def names(principal: Authenticated, pool: Pool) -> Names:
        if principal.role != "enterprise" or principal.enterprise_id is None:
            return Names(enterprises={}, sites={})
        own = principal.enterprise_id
        async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn:
            cur = await conn.execute("SELECT name FROM enterprises WHERE enterprise_id = %s", (own,))
            row: Any = await cur.fetchone()
            cur = await conn.execute(
                "SELECT site_id, name, district FROM sites WHERE enterprise_id = %s"
                " ORDER BY site_id LIMIT 1000",
                (own,),
            )
            sites = await cur.fetchall()
        return Names(
            enterprises={own: row[0]} if row else {},
            sites={s[0]: SiteName(name=s[1], district=s[2], enterprise_id=own) for s in sites},
        )

    return router
