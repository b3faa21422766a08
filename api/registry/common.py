"""What the registry's resource modules share: id and text patterns, query-parameter types, the
`Page` model and keyset paging, error responses, site locking, and the masking of credentials in
camera sources and webhook URLs."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Annotated, Any, Generic, LiteralString, TypeVar
from urllib.parse import unquote_plus, urlsplit, urlunsplit

from fastapi import HTTPException, Path, Query, Response, status
from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row
from pydantic import BaseModel, Field, StringConstraints

from api.deps import Pool
from api.models import ErrorBody
from vigil.events import ID_PATTERN

# One logger for the whole registry, named as when it was a single module, so log filters and
# searches on `api.registry` keep matching every create, update and delete line.
log = logging.getLogger("api.registry")

# How long a request waits for a pooled connection before the API answers 503.
ACQUIRE_TIMEOUT_S = 5.0

# The registry's id CHECK constraint. Also keeps NUL and oversized values out of every query.
ID_REGEX = rf"^{ID_PATTERN.pattern}$"
# Free text: no control characters (PostgreSQL text refuses NUL; the rest have no place in a name).
TEXT_REGEX = r"^[^\x00-\x1f\x7f]*$"
MASK = "***"
# Query parameters whose values are credentials (compared lower-case).
_SECRET_PARAMS = frozenset(
    {"password", "passwd", "pwd", "pass", "secret", "token", "access_token", "auth", "key", "apikey",
     "api_key", "sig", "signature"}
)  # fmt: skip
# The active alert states (the one-open-alert index's predicate, spelled the same way).
ACTIVE_ALERTS = "status NOT IN ('closed', 'dismissed')"

IdPath = Annotated[str, Path(pattern=ID_REGEX, description="1-64 of A-Z a-z 0-9 _ -")]
IdField = Annotated[str, Field(pattern=ID_REGEX)]
IdQuery = Annotated[str | None, Query(pattern=ID_REGEX)]
Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=TEXT_REGEX)
]
NameQuery = Annotated[
    str | None,
    Query(min_length=1, max_length=100, pattern=TEXT_REGEX, description="name contains (any case)"),
]
Limit = Annotated[int, Query(ge=1, le=500)]
Cursor = Annotated[
    str | None, Query(pattern=ID_REGEX, description="next_cursor from the previous page (the last id on it)")
]

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null on the last page")


# -------------------------------------------------------------------------------------- responses


def error_responses(what: str, *codes: int) -> dict[int | str, dict[str, Any]]:
    """The documented error responses of a route on `what`: 401 and 403 always, then `codes`."""
    descriptions = {
        401: "no valid credential",
        403: "not allowed for this role",
        404: f"no such {what}",
        409: f"the {what}'s current state does not allow this",
        422: "refused content, with the reason",
    }
    return {code: {"model": ErrorBody, "description": descriptions[code]} for code in (401, 403, *codes)}


def created_response(what: type[BaseModel]) -> dict[int | str, dict[str, Any]]:
    return {201: {"model": what, "description": "created"}}


def not_found(what: str, key: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"{what} {key} not found")


def refused(detail: str) -> HTTPException:
    return HTTPException(422, detail)  # the constant's name differs across Starlette versions


def conflict(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_409_CONFLICT, detail)


def write_status(response: Response, created: bool) -> None:
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK


# ---------------------------------------------------------------------------------------- secrets


def mask_url(url: str) -> str:
    """`url` with its password, and the values of credential-like query parameters, shown as `***`."""
    try:
        parts = urlsplit(url)
    except ValueError:  # not parseable (a hand-edited row): show nothing of it
        return MASK
    if not parts.scheme or not parts.netloc:  # a file path, 'push'
        return url
    netloc, found = parts.netloc, False
    if parts.password is not None:
        userinfo, _, hostport = netloc.rpartition("@")
        netloc, found = f"{userinfo.partition(':')[0]}:{MASK}@{hostport}", True
    pairs = []
    for pair in parts.query.split("&") if parts.query else []:
        name, sep, _value = pair.partition("=")
        if sep and unquote_plus(name).lower() in _SECRET_PARAMS:
            pair, found = f"{name}={MASK}", True
        pairs.append(pair)
    return urlunsplit(parts._replace(netloc=netloc, query="&".join(pairs))) if found else url


def holds_mask(url: str) -> bool:
    """Whether `url` carries the mask where `mask_url` puts one (a masked URL sent back)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    if parts.password == MASK:
        return True
    return any(
        unquote_plus(name).lower() in _SECRET_PARAMS and unquote_plus(value) == MASK
        for name, _, value in (pair.partition("=") for pair in parts.query.split("&") if pair)
    )


# ---------------------------------------------------------------------------------------- queries
# Fixed fragments only; every value travels as a query parameter.

Filters = Sequence[tuple[LiteralString, Any]]


async def fetch_page(
    conn: AsyncConnection[Any],
    select: sql.SQL,
    key: LiteralString,
    filters: Filters,
    cursor: str | None,
    limit: int,
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of `select` in `key` order, and the cursor of the next page (None on the last).
    `filters` are fixed SQL fragments (one %s each) with a value each; a None value leaves its
    fragment out."""
    where: list[sql.Composable] = []
    params: list[Any] = []
    for fragment, value in filters:
        if value is not None:
            where.append(sql.SQL(fragment))
            params.append(value)
    if cursor is not None:
        where.append(sql.SQL(key) + sql.SQL(" > %s"))
        params.append(cursor)
    query = sql.SQL("{} {} ORDER BY {} LIMIT %s").format(
        select, sql.SQL("WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL(""), sql.SQL(key)
    )
    params.append(limit + 1)  # one extra row says whether there is a next page
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        rows = await cur.fetchall()
    page = rows[:limit]
    return page, (str(page[-1][key.split(".")[-1]]) if len(rows) > limit else None)


async def list_page(
    pool: Pool, select: sql.SQL, key: LiteralString, filters: Filters, cursor: str | None, limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    """`fetch_page` on a connection of its own."""
    async with pool.connection(timeout=ACQUIRE_TIMEOUT_S) as conn:
        return await fetch_page(conn, select, key, filters, cursor, limit)


async def fetch_one(
    conn: AsyncConnection[Any], select: sql.SQL, key: LiteralString, value: str
) -> dict[str, Any] | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql.SQL("{} WHERE {} = %s").format(select, sql.SQL(key)), [value])
        return await cur.fetchone()


def like_pattern(text: str) -> str:
    """An ILIKE pattern matching values that contain `text` literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def lock_site_of(conn: AsyncConnection[Any], site_id: str, enterprise_id: str) -> None:
    """Refuse a site that does not exist or is another enterprise's; hold it (FOR SHARE) so it cannot
    move to another enterprise before the caller commits."""
    cur = await conn.execute("SELECT enterprise_id FROM sites WHERE site_id = %s FOR SHARE", (site_id,))
    row = await cur.fetchone()
    if row is None:
        raise refused(f"site {site_id} not found")
    if row[0] != enterprise_id:
        raise refused(f"site {site_id} belongs to enterprise {row[0]}, not {enterprise_id}")
