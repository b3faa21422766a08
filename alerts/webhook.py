"""Signed webhook notices: an enterprise that gives us a URL gets every notice POSTed to it as JSON.

Each request carries `X-Vigil-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>` over `"<t>." + body`
with the enterprise's secret (the scheme Stripe uses): a receiver checks it with `verify`, which
also refuses old timestamps, so a captured request cannot be replayed later. `X-Vigil-Notice-Id`
is stable across retries: delivery is at-least-once and the receiver drops repeats by that id.

MQTT notices carry the same signature in the payload itself (MQTT 3.1.1 has no headers): the notice
JSON exactly as a webhook would POST it, with one member appended last, `"signature": "t=..,v1=.."`
(`sign_notice`). Appending, rather than wrapping the notice in an envelope, keeps every field where
existing subscribers read it; removing that last member gives back the signed bytes, which the
webhook's `verify` checks (`verify_notice` does both).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
from psycopg import AsyncConnection

from vigil.errors import InvalidRequest, NotFound, VigilError

SIGNATURE_HEADER = "X-Vigil-Signature"
NOTICE_ID_HEADER = "X-Vigil-Notice-Id"
USER_AGENT = "vigil-notifier"
# Receivers should refuse signatures older (or further in the future) than this: wide enough for
# clock skew and a slow retry, short enough that a captured request is soon useless.
DEFAULT_TOLERANCE_S = 300.0
# Long enough for any real endpoint, short enough to stay a URL (browsers and proxies cap ~2-8 KB).
_MAX_URL_LENGTH = 2048


class WebhookFailed(VigilError):
    """The receiver did not accept a notice (no 2xx, unreachable, timed out); retry later."""

    retriable = True

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidWebhookUrl(InvalidRequest, ValueError):
    """A webhook URL that is not an absolute http(s) URL with a host."""


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The `X-Vigil-Signature` value for `body` sent at `timestamp` (unix seconds)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(
    secret: str,
    header: str,
    body: bytes,
    *,
    now: float | None = None,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> bool:
    """Whether `header` is a valid signature of `body` made within `tolerance_s` of `now`.

    For receivers. Malformed headers are refused, never raised on; several `v1=` entries (as
    during a secret rotation on the sender's side) pass if any one matches."""
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            return False
        if key == "t":
            if timestamp is not None or not value.isascii() or not value.isdigit():
                return False
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    expected = sign(secret, body, timestamp).rpartition("v1=")[2]
    # compare_digest on str needs ASCII; a non-ASCII candidate cannot match anyway.
    return any(c.isascii() and hmac.compare_digest(c, expected) for c in candidates)


# The member `sign_notice` appends to an MQTT notice; the bytes before it (plus the closing brace)
# are the signed body.
NOTICE_SIGNATURE_FIELD = "signature"
_SIGNATURE_MEMBER = b',"' + NOTICE_SIGNATURE_FIELD.encode() + b'":"'


def sign_notice(secret: str, notice: dict[str, Any], timestamp: int) -> bytes:
    """The MQTT payload of `notice`: its JSON with `"signature"` (as in `X-Vigil-Signature`) last."""
    body = orjson.dumps(notice)
    if not body.startswith(b"{") or body == b"{}" or NOTICE_SIGNATURE_FIELD in notice:
        raise ValueError("a notice is a non-empty JSON object without a signature of its own")
    return body[:-1] + _SIGNATURE_MEMBER + sign(secret, body, timestamp).encode() + b'"}'


def split_signed_notice(payload: bytes) -> tuple[bytes, str] | None:
    """(the signed body, the signature) of an MQTT notice, or None when it carries no signature.

    The signature is the last member, so the body is the payload up to it plus `}`; a signature
    holds only `t=`, `v1=`, digits, hex and commas, never a quote or backslash to unescape."""
    at = payload.rfind(_SIGNATURE_MEMBER)
    if at < 0 or not payload.endswith(b'"}'):
        return None
    signature = payload[at + len(_SIGNATURE_MEMBER) : -2]
    if not signature.isascii() or b'"' in signature or b"\\" in signature:
        return None
    return payload[:at] + b"}", signature.decode()


def verify_notice(
    secret: str, payload: bytes, *, now: float | None = None, tolerance_s: float = math.inf
) -> dict[str, Any] | None:
    """The notice in an MQTT `payload` if its signature is `secret`'s, else None.

    No age limit by default: a persistent session delivers notices queued while the subscriber was
    offline, hours or days after they were signed; drop repeats by `notice_id` instead."""
    split = split_signed_notice(payload)
    if split is None or not verify(secret, split[1], split[0], now=now, tolerance_s=tolerance_s):
        return None
    notice = orjson.loads(split[0])
    return notice if isinstance(notice, dict) else None


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def check_url(url: str) -> str:
    """`url` if it is an absolute http(s) URL with a host (scheme lower-cased), else InvalidWebhookUrl."""
    if len(url) > _MAX_URL_LENGTH:
        raise InvalidWebhookUrl(f"webhook URL longer than {_MAX_URL_LENGTH} characters")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise InvalidWebhookUrl("webhook URL contains whitespace or control characters")
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a port that is not a number in range
    except ValueError as exc:
        raise InvalidWebhookUrl(f"webhook URL is malformed: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidWebhookUrl(f"webhook URL must be http:// or https://, not {parts.scheme or 'relative'}")
    if not parts.hostname:
        raise InvalidWebhookUrl("webhook URL has no host")
    return parts.scheme + url[len(parts.scheme) :]


async def set_webhook(conn: AsyncConnection[Any], enterprise_id: str, url: str | None) -> str | None:
    """Point the enterprise's notices at `url` with a fresh signing secret, returned to be shown once;
    `None` removes the webhook (its undelivered notices then go dead, MQTT still carries them)."""
    secret = None if url is None else new_secret()
    checked = None if url is None else check_url(url)
    cur = await conn.execute(
        "UPDATE enterprises SET webhook_url = %s, webhook_secret = %s WHERE enterprise_id = %s"
        " RETURNING enterprise_id",
        (checked, secret, enterprise_id),
    )
    if await cur.fetchone() is None:
        raise NotFound(f"enterprise {enterprise_id} does not exist")
    return secret


class WebhookSender:
    """POSTs signed notices; redirects are not followed (a 3xx is a failure, like any non-2xx)."""

    def __init__(self, timeout_s: float) -> None:
        self._client = httpx.AsyncClient(
            timeout=timeout_s, follow_redirects=False, headers={"User-Agent": USER_AGENT}
        )

    async def post(self, url: str, secret: str, notice: dict[str, Any]) -> None:
        body = orjson.dumps(notice)
        headers = {
            "Content-Type": "application/json",
            NOTICE_ID_HEADER: str(notice.get("notice_id", "")),
            SIGNATURE_HEADER: sign(secret, body, int(time.time())),
        }
        try:
            # Streamed and never read: only the status matters, and a huge reply costs nothing.
            async with self._client.stream("POST", url, content=body, headers=headers) as response:
                status = response.status_code
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise WebhookFailed(type(exc).__name__) from exc
        if not 200 <= status < 300:
            raise WebhookFailed(f"HTTP {status}")

    async def aclose(self) -> None:
        if not self._client.is_closed:
            await self._client.aclose()
