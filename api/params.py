"""The path and query parameters that routes across the API share: their patterns, and how a time
without an offset is read.

Each pattern is anchored, for `Path(pattern=...)` and `Query(pattern=...)`. Besides the shape, it
keeps NUL (which PostgreSQL text refuses, turning into a 500) and oversized values out of the
query: bad input is a 422.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Path

from vigil import events

# Same shape as the registry's id CHECK constraints (enterprises, sites, devices, cameras, staff).
ID_PATTERN = rf"^{events.ID_PATTERN.pattern}$"
ALERT_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"
CODE_PATTERN = r"^[A-Za-z0-9_]{1,64}$"
# Districts are names (Chinese or Latin); free text is any printable text. Both keep control
# characters out of the query.
DISTRICT_PATTERN = r"^[\w .()'-]{1,64}$"
TEXT_PATTERN = r"^[^\x00-\x1f\x7f]+$"

AlertId = Annotated[str, Path(pattern=ALERT_ID_PATTERN)]


def as_utc(value: datetime) -> datetime:
    """A time without an offset is taken as UTC, not as whatever zone the database session has."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
