"""What the enterprise's route modules share: documented error responses, paging parameters, an
example alert id."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query

from api.models import ErrorBody

ALERT_ID_EXAMPLE = "v-camera-cam-1-KITCHEN_SMOKING-1714550400000"

Limit = Annotated[int, Query(ge=1, le=200)]
Cursor = Annotated[str | None, Query(description="next_cursor from the previous page")]


def error(description: str, example: str) -> dict[str, Any]:
    """A documented error response: its description and an example body."""
    return {
        "model": ErrorBody,
        "description": description,
        "content": {"application/json": {"example": {"detail": example}}},
    }


# Every route: no credential (401), or not an enterprise's (403).
BASE: dict[int | str, dict[str, Any]] = {
    401: error("no valid token", "invalid bearer token"),
    403: error("not an enterprise credential", "enterprise role required"),
}
BAD_CURSOR = error("an invalid cursor", "invalid cursor: cursor is not valid base64 JSON")
ALERT_NOT_FOUND = error("no such alert (or not this enterprise's)", "alert a-123 not found")
CONFLICT = error(
    "the alert's state does not allow this move",
    "cannot submit rectification an alert that is closed (allowed from: acknowledged, escalated,"
    " notified, open, rejected)",
)
