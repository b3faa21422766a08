"""The OpenAPI document, made to say exactly what the API answers.

Two kinds of refusal share a status code: FastAPI's own request validation answers 422 with a list
of errors, while a route that refuses content (an empty reason, a deadline in the past) answers
422 with a sentence. Every 422 is therefore documented as either. A body that is not JSON at all
is a 400 from the framework, documented on every operation that takes a body.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

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
