"""Opaque keyset cursors: URL-safe base64 of the (time, id) of the last item served, e.g. an
alert's (created_at, alert_id) or a notice's (created_at, notice_id).

Keyset rather than offset pagination, so a page is an index range scan however deep it is, and
alerts arriving while an operator pages do not shift or repeat rows.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from fastapi import HTTPException, status

# A real cursor is under 100 characters; anything much longer is not one of ours.
_MAX_CURSOR_CHARS = 512


class InvalidCursor(ValueError):
    pass


def encode_cursor(created_at: datetime, alert_id: str) -> str:
    raw = orjson.dumps([created_at.isoformat(), alert_id])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    if not cursor or len(cursor) > _MAX_CURSOR_CHARS:
        raise InvalidCursor("cursor is empty or too long")
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        value = orjson.loads(raw)
    except (binascii.Error, ValueError) as exc:  # also non-ASCII input and bad JSON
        raise InvalidCursor("cursor is not valid base64 JSON") from exc
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)):
        raise InvalidCursor("cursor has the wrong shape")
    created, alert_id = value
    try:
        created_at = datetime.fromisoformat(created)
    except ValueError as exc:
        raise InvalidCursor("cursor holds no valid timestamp") from exc
    # PostgreSQL text cannot hold NUL; a naive time would be read in the server's time zone.
    if created_at.tzinfo is None or not alert_id or "\x00" in alert_id:
        raise InvalidCursor("cursor holds an invalid position")
    return created_at, alert_id


def cursor_position(cursor: str) -> tuple[datetime, str]:
    """`decode_cursor` for a route: a cursor that is not one of ours is the client's error, a 400."""
    try:
        return decode_cursor(cursor)
    except InvalidCursor as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"invalid cursor: {exc}") from None


def split_page(
    rows: Sequence[dict[str, Any]], limit: int, *, key: str, tiebreak: str
) -> tuple[list[dict[str, Any]], str | None]:
    """Rows fetched with `LIMIT limit + 1` (the extra row says whether there is a next page): the
    page, and the cursor after its last row (`key`, `tiebreak`), or None on the last page."""
    page = list(rows[:limit])
    more = len(rows) > limit
    return page, encode_cursor(page[-1][key], page[-1][tiebreak]) if more else None
