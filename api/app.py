"""The FastAPI application: lifespan (database pool), health probes, auth wiring, routers."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from fastapi import FastAPI, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg_pool import AsyncConnectionPool

import vigil
from alerts.policy import Policy
from api import (
    accounts,
    actions,
    alerts,
    camera_tokens,
    dashboard,
    documents,
    enterprise,
    evidence,
    exports,
    keys,
    live,
    oidc,
    openapi,
    public,
    public_admin,
    registry,
    stats,
    stream,
    trace,
    ui,
)
from api import map as site_map
from api.auth import TokenAuthenticator
from api.models import Health, Readiness
from api.throttle import FailedAuthLimiter
from api.uploads import MAX_FORM_BYTES, UploadLimits
from vigil.db import make_pool
from vigil.errors import ConfigurationError
from vigil.evidence import EvidenceStore
from vigil.http import BodyLimit
from vigil.settings import Settings

log = logging.getLogger(__name__)

# The one route that takes more than JSON: a rectification form, photos included (api/uploads.py).
_UPLOAD_PATH = re.compile(r"/api/v1/enterprise/alerts/[^/]+/rectification")

# Start-up fails rather than serving a process that can never answer; orchestrators restart it.
POOL_OPEN_TIMEOUT_S = 15.0
# A readiness probe must answer well inside the prober's own timeout (commonly 1-5 s).
READY_TIMEOUT_S = 2.0


def create_app(settings: Settings) -> FastAPI:
    """Build the API for `settings`. Refuses (ConfigurationError) without a usable database URL or
    with a weak VIGIL_API_TOKEN; demo mode generates that token, production may leave it unset."""
    database_url = settings.database_url
    if not database_url:
        raise ConfigurationError("the API needs VIGIL_DATABASE_URL (or the embedded database started)")
    # Resolved once, here, so a misconfigured server fails at start-up, not on the first request.
    # Outside demo mode the static token is optional (API keys are the usual credential), but one
    # that is set must be strong.
    static_token = settings.require_secret("api_token") if settings.demo or settings.api_token else None
    authenticator = TokenAuthenticator(static_token)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool: AsyncConnectionPool[Any] = make_pool(database_url, name="vigil-api")
        await pool.open(wait=True, timeout=POOL_OPEN_TIMEOUT_S)
        # On app.state rather than lifespan state: test clients that enter the lifespan by hand
        # (ASGITransport) see app.state, but not the per-request state a server would inject.
        app.state.pool = pool
        try:
            yield
        finally:
            app.state.pool = None
            await pool.close()

    app = FastAPI(
        title="Vigil",
        version=vigil.__version__,
        description="Alerts from kitchen, food-plant and special-equipment monitoring.",
        lifespan=lifespan,
        # /docs and /redoc come from api.openapi, on vendored assets: FastAPI's own load from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.authenticator = authenticator
    app.state.content_security_policy = dashboard.content_security_policy(settings.map_tile_url)
    app.state.auth_limiter = FailedAuthLimiter(settings.api_auth_failures_per_minute)
    # Snapshots are files on a volume shared with the detectors; without one, none are served.
    app.state.evidence = EvidenceStore(settings.evidence_dir) if settings.evidence_dir else None
    app.state.pool = None
    # Lifecycle moves need the leniency look-back, follow-up delay and public URL for notices.
    app.state.policy = Policy.from_settings(settings)
    app.state.session_ttl_s = settings.api_session_ttl_s
    app.state.upload_limits = UploadLimits(settings.api_upload_max_pixels, settings.api_upload_decode_slots)
    app.state.kafka_bootstrap = settings.kafka_bootstrap  # the live stream; unset: it answers 503
    json_limit = settings.api_max_json_bytes

    def body_limit(path: str) -> int:
        return MAX_FORM_BYTES if _UPLOAD_PATH.fullmatch(path) else json_limit

    # Outermost of the app's own middleware: bodies are bounded before any route or credential.
    app.add_middleware(BodyLimit, limit_for=body_limit)
    app.add_exception_handler(psycopg.OperationalError, _database_unavailable)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.include_router(alerts.router)
    app.include_router(actions.router)
    app.include_router(keys.router)
    app.include_router(accounts.make_router(settings))
    if settings.oidc_issuer:  # single sign-on: its routes only where a provider is configured
        app.include_router(oidc.make_router(settings))
    app.include_router(camera_tokens.router)
    app.include_router(registry.router)
    app.include_router(enterprise.router)
    app.include_router(stream.router)
    app.include_router(live.router)
    app.include_router(trace.router)
    app.include_router(dashboard.router)
    app.include_router(evidence.router)
    app.include_router(stats.router)
    app.include_router(exports.make_router(settings))
    app.include_router(documents.make_router(settings))
    app.include_router(ui.make_router(settings))
    # The public kitchen window: publishing (scoped like the live view) and the no-login page.
    app.include_router(public_admin.make_router(settings))
    app.include_router(public.make_router(settings))
    # Reads and checks the district file now: a bad one stops the start-up, naming the file.
    app.include_router(site_map.make_router(settings))

    @app.get("/healthz", tags=["health"], summary="Liveness: the process answers")
    async def healthz() -> Health:
        return Health(status="ok")

    @app.get(
        "/readyz",
        tags=["health"],
        summary="Readiness: the database answers",
        responses={503: {"model": Readiness, "description": "not ready, with the reason"}},
    )
    async def readyz(request: Request, response: Response) -> Readiness:
        reason = await _check_database(request.app.state.pool)
        if reason is None:
            return Readiness(status="ready")
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return Readiness(status="unavailable", reason=reason)

    openapi.install(app)
    return app


async def _check_database(pool: AsyncConnectionPool[Any] | None) -> str | None:
    """None when the database answers `SELECT 1` in time, else a short reason."""
    if pool is None:
        return "database pool not open"
    try:
        async with asyncio.timeout(READY_TIMEOUT_S), pool.connection(timeout=READY_TIMEOUT_S) as conn:
            await conn.execute("SELECT 1")
    except TimeoutError:
        return f"database did not answer within {READY_TIMEOUT_S:g}s"
    except psycopg.Error as exc:
        return f"database error: {type(exc).__name__}"
    return None


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # A pool timeout or lost connection is the database's state, not a bug: 503 tells clients and
    # load balancers to retry elsewhere or later, where a 500 would page someone for nothing.
    log.warning("database unavailable serving %s %s: %s", request.method, request.url.path, exc)
    return JSONResponse({"detail": "database unavailable"}, status_code=status.HTTP_503_SERVICE_UNAVAILABLE)


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    # FastAPI's own handler echoes each offending input back, and fails (a 500) when that input
    # is NaN or Infinity, which JSON cannot carry. The same list, with inputs made printable.
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
        for e in exc.errors()
    ]
    return JSONResponse({"detail": errors}, status_code=422)
