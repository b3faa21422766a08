"""Submitting a rectification: what was done, with photos, as multipart/form-data. The photos are
checked and re-encoded by `api.uploads` and stored in the evidence store before the move."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, HTTPException, Request, status
from pydantic import BaseModel, ConfigDict, Field

from alerts import lifecycle
from api.alert_query import alert_status, public_alert, tenant
from api.auth import EnterpriseUser
from api.deps import ACQUIRE_TIMEOUT_S, Pool, refusals
from api.enterprise.common import ALERT_NOT_FOUND, BASE, CONFLICT, error
from api.enterprise.view import enterprise_alert
from api.models import EnterpriseAlert
from api.params import AlertId
from api.uploads import MAX_DESCRIPTION, MAX_DIMENSION, MAX_PHOTOS, read_rectification_form
from vigil.evidence import EvidenceStore

router = APIRouter()


class RectificationReceipt(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"alert": {"status": "rectification_submitted"}, "photos": ["9f" * 32]}]
        }
    )

    alert: EnterpriseAlert = Field(description="the alert as it now is (rectification_submitted)")
    photos: list[str] = Field(description="SHA-256 of each stored photo (re-encoded JPEG), in upload order")


_RECTIFICATION_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["description"],
                "properties": {
                    "description": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": MAX_DESCRIPTION,
                        "description": "what was done to correct the violation",
                    },
                    "photos": {
                        "type": "array",
                        "maxItems": MAX_PHOTOS,
                        "items": {"type": "string", "contentMediaType": "application/octet-stream"},
                        "description": f"0 to {MAX_PHOTOS} photos, JPEG or PNG, each at most 5 MiB,"
                        f" {MAX_DIMENSION} pixels a side and VIGIL_API_UPLOAD_MAX_PIXELS pixels in all"
                        " (24 MP by default), read from the header before decoding; stored re-encoded"
                        " as JPEG",
                    },
                },
            },
            "encoding": {"photos": {"contentType": "image/jpeg, image/png"}},
        }
    },
}


@router.post(
    "/alerts/{alert_id}/rectification",
    status_code=status.HTTP_201_CREATED,
    openapi_extra={"requestBody": _RECTIFICATION_BODY},
    responses={
        **BASE,
        400: error("malformed multipart body", "Invalid multipart data."),
        404: ALERT_NOT_FOUND,
        409: CONFLICT,
        413: error("a photo over 5 MiB, or the whole form over its limit", "photo 1 (sink.jpg): over 5 MiB"),
        415: error(
            "not multipart/form-data, or a photo that is not (really) JPEG or PNG",
            "photo 1 (notes.jpg): the content is not image/jpeg",
        ),
        422: error(
            "an empty or over-long description, more than 10 photos, or a photo that does not decode"
            " or is over 8000x8000 pixels",
            "photo 2 (sink.png): the image does not decode",
        ),
        503: error("photos cannot be stored: no evidence store configured", "no evidence store configured"),
    },
    summary="Submit a rectification: what was done, with photos",
    description="multipart/form-data with `description` and 0 to 10 `photos`. Each photo is checked"
    " (type, magic bytes, size, dimensions, decoding) and stored re-encoded as JPEG, which strips"
    " EXIF/GPS metadata; the response lists the stored photos' SHA-256.",
)
async def submit_rectification(
    principal: EnterpriseUser, pool: Pool, request: Request, alert_id: AlertId
) -> RectificationReceipt:
    enterprise_id = tenant(principal)
    # Refuse a move the alert cannot make before reading (and storing) any upload.
    current = await alert_status(pool, alert_id, tenant=enterprise_id)
    if current is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"alert {alert_id} not found")
    with refusals():
        lifecycle.check_transition("submit_rectification", current)

    store: EvidenceStore | None = request.app.state.evidence
    description, jpegs = await read_rectification_form(request, store_available=store is not None)
    shas: list[str] = []
    for jpeg in jpegs:
        assert store is not None
        sha = await asyncio.to_thread(store.put, jpeg)  # fsync: not on the event loop
        if sha not in shas:
            shas.append(sha)
    with refusals():
        async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn, conn.transaction():
            row = await lifecycle.submit_rectification(
                conn, alert_id, enterprise_id=enterprise_id, actor=principal.actor,
                description=description, photos=shas,
            )  # fmt: skip
    return RectificationReceipt(alert=enterprise_alert(public_alert(row)), photos=shas)
