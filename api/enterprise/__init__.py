"""The enterprise's own API: its notices, its alerts, its rectifications, its compliance score.

Every route takes an enterprise credential and is scoped to that enterprise: another enterprise's
alert or notice is a 404 (never a 403, and never any of its data), and lists hold only the caller's
rows. Bureau staff are refused (403): they have the operator routes. Alerts are read through
`api.alert_query`, which applies that tenancy.

Rectification photos arrive as multipart/form-data and are checked and re-encoded by `api.uploads`
before they go into the content-addressed evidence store; their SHA-256 goes on the rectification
and they are served at `/api/v1/alerts/{alert_id}/evidence/{sha256}`.

One module per responsibility: the notice inbox (`notices`), the enterprise's alerts and their
acknowledgement (`alerts`), rectifications with photos (`rectification`), its ended alerts and
compliance score (`record`); what they share is in `common`. This module assembles their routes.
"""

from __future__ import annotations

from fastapi import APIRouter

from api.enterprise import alerts, notices, record, rectification

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/enterprise", tags=["enterprise"])
# In this order, which is the order of the paths in the OpenAPI document.
for _part in (notices, alerts, rectification, record):
    router.include_router(_part.router)
