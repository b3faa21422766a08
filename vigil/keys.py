"""API keys and browser session tokens.

A key looks like `vigil_<key id>_<secret>`: the id (12 hex characters) is public and finds the row;
the database keeps only the SHA-256 of the whole key, so a stolen table opens nothing. Keys are
random (256 bits), which is why a fast hash is enough here: there is nothing to brute-force.
A browser exchanges a key for a session token (`vt_<secret>`, also stored hashed) that expires;
revoking a key ends its sessions too.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from psycopg import AsyncConnection

from vigil.errors import InvalidRequest, NotFound

Role = Literal["operator", "supervisor", "enterprise"]
ROLES: tuple[Role, ...] = ("operator", "supervisor", "enterprise")

KEY_PREFIX, TOKEN_PREFIX = "vigil_", "vt_"
_KEY = re.compile(r"^vigil_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_TOKEN = re.compile(r"^vt_[A-Za-z0-9_-]{43}$")
# Recording each use would write on every request; once a minute is enough to spot an idle key.
_LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class KeyIdentity:
    key_id: str
    name: str
    role: Role
    enterprise_id: str | None
    session: bool = False  # presented as a session token rather than as the key itself


def _sha256(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


async def create_key(
    conn: AsyncConnection[Any], *, name: str, role: str, enterprise_id: str | None, created_by: str
) -> tuple[str, str]:
    """Create a key; returns (key id, the whole key). The key is shown this once and never again."""
    if role not in ROLES:
        raise InvalidRequest(f"role must be one of {', '.join(ROLES)}")
    if (role == "enterprise") != (enterprise_id is not None):
        raise InvalidRequest("an enterprise key needs --enterprise; bureau keys take none")
    name = name.strip()
    if not 1 <= len(name) <= 200 or not name.isprintable():
        raise InvalidRequest("a key needs a name of 1-200 printable characters")
    if enterprise_id is not None:
        cur = await conn.execute("SELECT 1 FROM enterprises WHERE enterprise_id = %s", (enterprise_id,))
        if await cur.fetchone() is None:
            raise NotFound(f"enterprise {enterprise_id} not found")
    key_id = secrets.token_hex(6)
    key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    await conn.execute(
        "INSERT INTO api_keys (key_id, secret_sha256, name, role, enterprise_id, created_by)"
        " VALUES (%s, %s, %s, %s, %s, %s)",
        (key_id, _sha256(key), name, role, enterprise_id, created_by),
    )
    return key_id, key


async def revoke_key(conn: AsyncConnection[Any], key_id: str) -> None:
    cur = await conn.execute(
        "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()) WHERE key_id = %s RETURNING 1",
        (key_id,),
    )
    if await cur.fetchone() is None:
        raise NotFound(f"key {key_id} not found")
    await conn.execute("DELETE FROM api_tokens WHERE key_id = %s", (key_id,))


async def identify(conn: AsyncConnection[Any], credential: str) -> KeyIdentity | None:
    """The live key behind a presented key or session token, or None."""
    if (match := _KEY.match(credential)) is not None:
        cur = await conn.execute(
            "SELECT key_id, name, role, enterprise_id, secret_sha256, last_used_at < now() - %s"
            " FROM api_keys WHERE key_id = %s AND revoked_at IS NULL",
            (_LAST_USED_RESOLUTION, match.group(1)),
        )
        row = await cur.fetchone()
        if row is None or not hmac.compare_digest(bytes(row[4]), _sha256(credential)):
            return None
        if row[5] is not False:  # NULL (never used) or older than the resolution
            await conn.execute("UPDATE api_keys SET last_used_at = now() WHERE key_id = %s", (row[0],))
        return KeyIdentity(row[0], row[1], row[2], row[3])
    if _TOKEN.match(credential) is not None:
        cur = await conn.execute(
            "SELECT k.key_id, k.name, k.role, k.enterprise_id"
            " FROM api_tokens t JOIN api_keys k USING (key_id)"
            " WHERE t.token_sha256 = %s AND t.expires_at > now() AND k.revoked_at IS NULL",
            (_sha256(credential),),
        )
        row = await cur.fetchone()
        return KeyIdentity(row[0], row[1], row[2], row[3], session=True) if row is not None else None
    return None


async def open_session(conn: AsyncConnection[Any], key_id: str, ttl: timedelta) -> tuple[str, datetime]:
    """A session token for a browser, valid for `ttl`; expired ones are swept on the way."""
    await conn.execute("DELETE FROM api_tokens WHERE expires_at < now() - interval '1 day'")
    token = f"{TOKEN_PREFIX}{secrets.token_urlsafe(32)}"
    cur = await conn.execute(
        "INSERT INTO api_tokens (token_sha256, key_id, expires_at) VALUES (%s, %s, now() + %s)"
        " RETURNING expires_at",
        (_sha256(token), key_id, ttl),
    )
    row = await cur.fetchone()
    assert row is not None
    expires: datetime = row[0]
    return token, expires
