"""Who may push frames for which camera.

Each edge box holds its own push token (`vigil cameras token issue`, or the supervisor API),
covering named cameras of one enterprise; only its SHA-256 is in the database (vigil.keys). A push
with a token that does not cover the camera is refused (403) and dead-lettered, so a box of one
enterprise cannot raise alerts in another's kitchen. The one shared `VIGIL_CAMERA_PUSH_TOKEN`,
which covers every camera, is accepted in demo mode only.

A token's answer is cached for CACHE_TTL_S, so a box pushing several frames a second costs one
database lookup every few seconds, not one a frame; a revoked or rotated token therefore stops
working within that time.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from psycopg_pool import AsyncConnectionPool

from vigil.keys import push_grant
from vigil.settings import Settings

log = logging.getLogger(__name__)

CACHE_TTL_S = 5.0
# Live tokens remembered at once: one per edge box; beyond it the least recently used is dropped.
CACHE_ENTRIES = 4096


@dataclass(frozen=True, slots=True)
class PushCredential:
    """An accepted push credential. `cameras` None: every camera (the demo's shared token)."""

    token_id: str | None
    enterprise_id: str | None
    cameras: frozenset[str] | None

    def covers(self, camera_id: str) -> bool:
        return self.cameras is None or camera_id in self.cameras

    @property
    def label(self) -> str:
        return f"push token {self.token_id}" if self.token_id else "the demo's shared push token"


_SHARED = PushCredential(None, None, None)


class PushCredentials:
    def __init__(self, pool: AsyncConnectionPool[Any], settings: Settings) -> None:
        self._pool = pool
        self._shared: bytes | None = None
        if settings.demo:
            self._shared = settings.require_secret("camera_push_token").encode()
        elif settings.camera_push_token is not None:
            log.warning(
                "VIGIL_CAMERA_PUSH_TOKEN is ignored outside demo mode: give each edge box its own"
                " token (`vigil cameras token issue`)"
            )
        self._cache: OrderedDict[bytes, tuple[float, PushCredential]] = OrderedDict()

    async def authenticate(self, presented: str) -> PushCredential | None:
        """The credential `presented` is, or None when it is not a live one."""
        # Bytes, not str: compare_digest raises on non-ASCII str, and the header is the caller's.
        raw = presented.encode()
        if self._shared is not None and hmac.compare_digest(raw, self._shared):
            return _SHARED
        if len(raw) > 200:
            return None
        digest = hashlib.sha256(raw).digest()
        now = time.monotonic()
        hit = self._cache.get(digest)
        if hit is not None and now - hit[0] < CACHE_TTL_S:
            self._cache.move_to_end(digest)
            return hit[1]
        async with self._pool.connection() as conn:
            grant = await push_grant(conn, presented)
        if grant is None:
            self._cache.pop(digest, None)
            return None
        credential = PushCredential(grant.token_id, grant.enterprise_id, grant.cameras)
        self._cache[digest] = (now, credential)
        self._cache.move_to_end(digest)
        while len(self._cache) > CACHE_ENTRIES:
            self._cache.popitem(last=False)
        return credential
