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


def credential_digest(value: str) -> bytes:
    """What a credential (key, session, token) is stored and looked up as: its SHA-256."""
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
        (key_id, credential_digest(key), name, role, enterprise_id, created_by),
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
        if row is None or not hmac.compare_digest(bytes(row[4]), credential_digest(credential)):
            return None
        if row[5] is not False:  # NULL (never used) or older than the resolution
            await conn.execute("UPDATE api_keys SET last_used_at = now() WHERE key_id = %s", (row[0],))
        return KeyIdentity(row[0], row[1], row[2], row[3])
    if _TOKEN.match(credential) is not None:
        cur = await conn.execute(
            "SELECT k.key_id, k.name, k.role, k.enterprise_id"
            " FROM api_tokens t JOIN api_keys k USING (key_id)"
            " WHERE t.token_sha256 = %s AND t.expires_at > now() AND k.revoked_at IS NULL",
            (credential_digest(credential),),
        )
        row = await cur.fetchone()
        return KeyIdentity(row[0], row[1], row[2], row[3], session=True) if row is not None else None
    return None


async def end_session(conn: AsyncConnection[Any], token: str) -> bool:
    """End a browser session now (sign-out) rather than at its expiry; False if it was not live."""
    if _TOKEN.match(token) is None:
        return False
    cur = await conn.execute(
        "DELETE FROM api_tokens WHERE token_sha256 = %s RETURNING 1", (credential_digest(token),)
    )
    return await cur.fetchone() is not None


async def open_session(conn: AsyncConnection[Any], key_id: str, ttl: timedelta) -> tuple[str, datetime]:
    """A session token for a browser, valid for `ttl`; expired ones are swept on the way."""
    await conn.execute("DELETE FROM api_tokens WHERE expires_at < now() - interval '1 day'")
    token = f"{TOKEN_PREFIX}{secrets.token_urlsafe(32)}"
    cur = await conn.execute(
        "INSERT INTO api_tokens (token_sha256, key_id, expires_at) VALUES (%s, %s, now() + %s)"
        " RETURNING expires_at",
        (credential_digest(token), key_id, ttl),
    )
    row = await cur.fetchone()
    assert row is not None
    expires: datetime = row[0]
    return token, expires


# --- device access tokens (ThingsBoard devices: the SDK sends the token as its MQTT username) ---

_DEVICE_TOKEN = re.compile(r"^[A-Za-z0-9_-]{20,100}$")


@dataclass(frozen=True, slots=True)
class DeviceToken:
    token_id: str
    device_id: str


async def issue_device_token(
    conn: AsyncConnection[Any], device_id: str, *, created_by: str
) -> tuple[str, str]:
    """A new access token for `device_id`; returns (token id, the token). The token is shown this
    once; only its SHA-256 is stored. A live earlier token of the device is revoked (rotation)."""
    cur = await conn.execute("SELECT 1 FROM devices WHERE device_id = %s FOR UPDATE", (device_id,))
    if await cur.fetchone() is None:
        raise NotFound(f"device {device_id} not found")
    await conn.execute(
        "UPDATE device_tokens SET revoked_at = now() WHERE device_id = %s AND revoked_at IS NULL",
        (device_id,),
    )
    token_id = secrets.token_hex(6)
    # 256 random bits: like API keys, a fast hash is enough, there is nothing to brute-force.
    token = secrets.token_urlsafe(32)
    await conn.execute(
        "INSERT INTO device_tokens (token_id, device_id, token_sha256, created_by) VALUES (%s, %s, %s, %s)",
        (token_id, device_id, credential_digest(token), created_by),
    )
    return token_id, token


async def revoke_device_token(conn: AsyncConnection[Any], device_id: str) -> int:
    """Revoke the device's live token; returns how many were revoked (0 or 1)."""
    cur = await conn.execute("SELECT 1 FROM devices WHERE device_id = %s", (device_id,))
    if await cur.fetchone() is None:
        raise NotFound(f"device {device_id} not found")
    cur = await conn.execute(
        "UPDATE device_tokens SET revoked_at = now() WHERE device_id = %s AND revoked_at IS NULL",
        (device_id,),
    )
    return cur.rowcount


async def device_for_token(conn: AsyncConnection[Any], token: str) -> DeviceToken | None:
    """The device a presented, live access token belongs to, or None."""
    if not _DEVICE_TOKEN.match(token):
        return None
    cur = await conn.execute(
        "SELECT token_id, device_id FROM device_tokens WHERE token_sha256 = %s AND revoked_at IS NULL",
        (credential_digest(token),),
    )
    row = await cur.fetchone()
    return DeviceToken(row[0], row[1]) if row is not None else None


# --- camera push tokens (edge boxes posting frames to camera ingest) -----------------------------
# `vcp_<token id>_<secret>`, like an API key: the id finds the row, only the SHA-256 of the whole
# token is stored, and the token is shown once, when issued or rotated. A token covers named
# cameras of one enterprise: a box holding it cannot push into another tenant's camera.

PUSH_PREFIX = "vcp_"
_PUSH = re.compile(r"^vcp_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
MAX_PUSH_CAMERAS = 256


@dataclass(frozen=True, slots=True)
class PushGrant:
    token_id: str
    enterprise_id: str
    cameras: frozenset[str]


def _push_token(token_id: str) -> str:
    return f"{PUSH_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"


async def issue_push_token(
    conn: AsyncConnection[Any], *, enterprise_id: str, name: str, cameras: list[str], created_by: str
) -> tuple[str, str]:
    """A push token for an edge box, covering `cameras` (each registered under `enterprise_id`);
    returns (token id, the whole token), shown this once."""
    name = name.strip()
    if not 1 <= len(name) <= 200 or not name.isprintable():
        raise InvalidRequest("a push token needs a name (the edge box) of 1-200 printable characters")
    wanted = sorted(set(cameras))
    if not 1 <= len(wanted) <= MAX_PUSH_CAMERAS:
        raise InvalidRequest(f"a push token covers 1 to {MAX_PUSH_CAMERAS} cameras")
    cur = await conn.execute(
        "SELECT camera_id FROM cameras WHERE enterprise_id = %s AND camera_id = ANY(%s)",
        (enterprise_id, wanted),
    )
    found = {row[0] for row in await cur.fetchall()}
    if missing := [c for c in wanted if c not in found]:
        raise NotFound(f"camera(s) {', '.join(missing)} not registered under enterprise {enterprise_id}")
    token_id = secrets.token_hex(6)
    token = _push_token(token_id)
    await conn.execute(
        "INSERT INTO camera_push_tokens (token_id, enterprise_id, name, cameras, token_sha256, created_by)"
        " VALUES (%s, %s, %s, %s, %s, %s)",
        (token_id, enterprise_id, name, wanted, credential_digest(token), created_by),
    )
    return token_id, token


async def rotate_push_token(conn: AsyncConnection[Any], token_id: str) -> str:
    """A new secret for a live push token (same id, same cameras); the old one stops at once."""
    token = _push_token(token_id)
    cur = await conn.execute(
        "UPDATE camera_push_tokens SET token_sha256 = %s, rotated_at = now()"
        " WHERE token_id = %s AND revoked_at IS NULL RETURNING 1",
        (credential_digest(token), token_id),
    )
    if await cur.fetchone() is None:
        raise NotFound(f"no live push token {token_id}")
    return token


async def revoke_push_token(conn: AsyncConnection[Any], token_id: str) -> None:
    cur = await conn.execute(
        "UPDATE camera_push_tokens SET revoked_at = COALESCE(revoked_at, now())"
        " WHERE token_id = %s RETURNING 1",
        (token_id,),
    )
    if await cur.fetchone() is None:
        raise NotFound(f"push token {token_id} not found")


async def push_grant(conn: AsyncConnection[Any], token: str) -> PushGrant | None:
    """What a presented push token covers, or None when it is not a live one."""
    if (match := _PUSH.match(token)) is None:
        return None
    cur = await conn.execute(
        "SELECT token_id, enterprise_id, cameras, token_sha256 FROM camera_push_tokens"
        " WHERE token_id = %s AND revoked_at IS NULL",
        (match.group(1),),
    )
    row = await cur.fetchone()
    if row is None or not hmac.compare_digest(bytes(row[3]), credential_digest(token)):
        return None
    return PushGrant(row[0], row[1], frozenset(row[2]))
