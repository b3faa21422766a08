"""The OpenAPI document, made to say exactly what the API answers.

Two kinds of refusal share a status code: FastAPI's own request validation answers 422 with a list
of errors, while a route that refuses content (an empty reason, a deadline in the past) answers
422 with a sentence. Every 422 is therefore documented as either. A body that is not JSON at all
is a 400 from the framework, documented on every operation that takes a body.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse

# Swagger UI and ReDoc, vendored (package.json `vendor`) and served with the dashboard's assets:
# on a closed government network a CDN does not answer, and the pages would stay blank.
VENDOR = "/dashboard/assets/vendor"

_UNPROCESSABLE = {
    "title": "Unprocessable",
    "type": "object",
    "required": ["detail"],
    "properties": {
        "detail": {
            "anyOf": [
                {"type": "string", "description": "what the route refused, in a sentence"},
                {"type": "array", "items": {"$ref": "#/components/schemas/ValidationError"}},
            ]
        }
    },
}
_MALFORMED = {
    "description": "the body could not be parsed",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
}


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components["Unprocessable"] = _UNPROCESSABLE
            components.setdefault(
                "ErrorBody",
                {"title": "ErrorBody", "type": "object", "required": ["detail"],
                 "properties": {"detail": {"type": "string", "title": "Detail"}}},
            )  # fmt: skip
            loc = {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}}
            components.setdefault(
                "ValidationError",
                {"title": "ValidationError", "type": "object", "required": ["loc", "msg", "type"],
                 "properties": {"loc": loc, "msg": {"type": "string"}, "type": {"type": "string"}}},
            )  # fmt: skip
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    responses = operation.setdefault("responses", {})
                    if "422" in responses:
                        responses["422"]["content"] = {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Unprocessable"}}
                        }
                    if "requestBody" in operation:
                        responses.setdefault("400", _MALFORMED)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    _install_docs(app)


def _install_docs(app: FastAPI) -> None:
    oauth2_redirect = "/docs/oauth2-redirect"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=f"{root}{oauth2_redirect}",
            swagger_js_url=f"{root}{VENDOR}/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{VENDOR}/swagger-ui/swagger-ui.css",
            swagger_favicon_url=f"{root}{VENDOR}/swagger-ui/favicon-32x32.png",
        )

    @app.get(oauth2_redirect, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{VENDOR}/redoc/redoc.standalone.js",
            redoc_favicon_url=f"{root}{VENDOR}/swagger-ui/favicon-32x32.png",
            with_google_fonts=False,
        )
