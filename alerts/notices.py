"""Enterprise notices: written to the inbox (`notices`) and, in the same transaction, to the outbox
once per push channel the enterprise has (MQTT always, the signed webhook when one is set).

A notice is self-contained: the code with its Chinese and English names, the deadline, the
leniency status and links to the evidence, so an enterprise system can act on it without calling
back. `notice_id` is stable, so a receiver drops the repeats that at-least-once delivery brings.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from vigil.catalogue import catalogue
from vigil.errors import NotFound
from vigil.i18n import LANGUAGES
from vigil.summaries import DEFAULT_TIMEZONE, notice_text, render_both

OUTBOX_CHANNEL = "vigil_outbox"  # LISTEN/NOTIFY channel that wakes the notifier

NoticeKind = Literal["opened", "rejected", "escalated", "closed", "dismissed"]

# Columns of `alerts` a notice is built from; callers select them with this list.
NOTICE_COLUMNS = (
    "alert_id, enterprise_id, site_id, source_kind, source_id, code, severity, tier, summary, status,"
    " evidence, first_seen, deadline, leniency, penalty_case, prior_alert_id, disposition"
)

# What the enterprise reads about its leniency status, in both languages of the catalogue.
LENIENCY_TEXT = {
    "first_offence": (
        "首次违法：按期整改的，予以警告，不予处罚",
        "First offence: corrected by the deadline, it gets a warning and no penalty",
    ),
    "repeat": (
        "再次违法：已移交立案处罚",
        "Repeat offence: referred for a penalty case",
    ),
    "not_eligible": (
        "不适用首违不罚，请按期整改",
        "Not eligible for first-offence leniency: correct it by the deadline",
    ),
}


def notice_secret(signing_key: str, enterprise_id: str) -> str:
    """The secret that signs `enterprise_id`'s MQTT notices: HMAC-SHA256(VIGIL_NOTICE_SIGNING_KEY,
    "notices.<enterprise_id>"), base64url. Derived, not stored (as MQTT passwords are), so every
    enterprise has one whether or not it has a webhook, and `vigil mqtt notice-secret` can tell it
    again; rotating the key rotates every enterprise's. A key of its own, not the MQTT credential
    key: the notifier that holds it cannot derive any device's broker password."""
    digest = hmac.new(signing_key.encode(), f"notices.{enterprise_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def evidence_links(public_url: str, alert_id: str, evidence: Mapping[str, Any]) -> list[str]:
    base = public_url.rstrip("/")
    links = [
        f"{base}/api/v1/alerts/{alert_id}/evidence/{evidence[key]}"
        for key in ("snapshot_sha256", "frame_sha256")
        if isinstance(evidence.get(key), str)
    ]
    # A camera finding's event clip: by its hash once made; before that (the opening notice is
    # written moments after the finding) the alert's stable clip link, served once the clip is.
    if isinstance(evidence.get("clip_sha256"), str):
        links.append(f"{base}/api/v1/alerts/{alert_id}/clips/{evidence['clip_sha256']}")
    elif isinstance(evidence.get("frame_ts"), int):
        links.append(f"{base}/api/v1/alerts/{alert_id}/clip")
    return links


def build_notice(
    alert: Mapping[str, Any],
    kind: NoticeKind,
    notice_id: str,
    *,
    public_url: str,
    reason: str | None = None,
    issued_at: datetime,
    timezone: str = DEFAULT_TIMEZONE,
) -> dict[str, Any]:
    kind_info = catalogue().get(alert["code"])
    leniency_zh, leniency_en = LENIENCY_TEXT[alert["leniency"]]
    # What the enterprise reads, in both languages (vigil.summaries; times in the bureau's zone).
    code, evidence, deadline = alert["code"], alert["evidence"] or {}, _ms(alert["deadline"])
    texts = {
        f"text_{language[:2]}": notice_text(
            kind, code, evidence, language, deadline_ms=deadline, reason=reason, timezone=timezone
        )
        for language in LANGUAGES
    }
    return {
        "v": 1,
        "type": "notice",
        "notice_id": notice_id,
        "kind": kind,
        "alert_id": alert["alert_id"],
        "enterprise_id": alert["enterprise_id"],
        "site_id": alert["site_id"],
        "source_kind": alert["source_kind"],
        "source_id": alert["source_id"],
        "code": alert["code"],
        "name_zh": kind_info.name_zh if kind_info else alert["code"],
        "name_en": kind_info.name_en if kind_info else alert["code"],
        "severity": alert["severity"],
        "tier": alert["tier"],
        # Tier 1 (a rat, a trapped passenger) is an immediate warning, whatever the history.
        "instant_warning": alert["tier"] == 1,
        "summary": alert["summary"],
        **render_both(code, evidence),
        **texts,
        "status": alert["status"],
        "detected_at": _ms(alert["first_seen"]),
        "rectify_by": _ms(alert["deadline"]),
        "leniency": alert["leniency"],
        "leniency_zh": leniency_zh,
        "leniency_en": leniency_en,
        # Kept from the first notice format: is this code on the first-offence-no-penalty list.
        "first_offence_warning": bool(kind_info and kind_info.first_offence_warning),
        "penalty_case": alert["penalty_case"],
        "disposition": alert["disposition"],
        "reason": reason,
        "evidence": evidence_links(public_url, alert["alert_id"], alert["evidence"] or {}),
        "issued_at": _ms(issued_at),
    }


async def write_notice(
    conn: AsyncConnection[Any],
    alert: Mapping[str, Any],
    kind: NoticeKind,
    *,
    public_url: str,
    reason: str | None = None,
    timezone: str = DEFAULT_TIMEZONE,
) -> str:
    """Put a notice in the enterprise's inbox and queue it on every push channel it has.

    The caller holds the alert row locked (FOR UPDATE), which makes the per-kind sequence in the
    notice id race-free."""
    alert_id = alert["alert_id"]
    if kind == "opened":
        notice_id = f"{alert_id}:opened"
    else:
        cur = await conn.execute(
            "SELECT count(*) FROM notices WHERE alert_id = %s AND kind = %s", (alert_id, kind)
        )
        row = await cur.fetchone()
        notice_id = f"{alert_id}:{kind}:{(row[0] if row else 0) + 1}"
    now_row = await (await conn.execute("SELECT now()")).fetchone()
    assert now_row is not None
    payload = build_notice(
        alert, kind, notice_id, public_url=public_url, reason=reason, issued_at=now_row[0], timezone=timezone
    )
    await conn.execute(
        "INSERT INTO notices (notice_id, alert_id, enterprise_id, kind, payload) VALUES (%s, %s, %s, %s, %s)",
        (notice_id, alert_id, alert["enterprise_id"], kind, Jsonb(payload)),
    )
    # MQTT for every enterprise; the webhook only where one is configured.
    await conn.execute(
        "INSERT INTO outbox (alert_id, enterprise_id, channel, payload, notice_id)"
        " SELECT %(a)s, %(e)s, 'mqtt_notice', %(p)s, %(n)s"
        " UNION ALL SELECT %(a)s, %(e)s, 'webhook', %(p)s, %(n)s"
        " FROM enterprises WHERE enterprise_id = %(e)s AND webhook_url IS NOT NULL",
        {"a": alert_id, "e": alert["enterprise_id"], "p": Jsonb(payload), "n": notice_id},
    )
    await conn.execute("SELECT pg_notify(%s, '')", (OUTBOX_CHANNEL,))
    return notice_id


async def write_change(
    conn: AsyncConnection[Any], alert_id: str, enterprise_id: str, change: str, status: str, **extra: Any
) -> None:
    """Queue an alert change for `vigil.alerts.v1` (the operators' live stream)."""
    # The status as of this change: published later, the alert row may have moved on.
    payload = {"change": change, "status": status, **extra}
    await conn.execute(
        "INSERT INTO outbox (alert_id, enterprise_id, channel, payload) VALUES (%s, %s, 'alert_stream', %s)",
        (alert_id, enterprise_id, Jsonb(payload)),
    )


async def mark_read(
    conn: AsyncConnection[Any], notice_id: str, *, enterprise_id: str, actor: str
) -> datetime:
    """The enterprise's read receipt. The first read is kept (and audited on the alert, as proof the
    enterprise was told); reading again changes nothing. Another enterprise's notice is not found."""
    cur = await conn.execute(
        "UPDATE notices SET read_at = now() WHERE notice_id = %s AND enterprise_id = %s AND read_at IS NULL"
        " RETURNING alert_id, read_at",
        (notice_id, enterprise_id),
    )
    row = await cur.fetchone()
    if row is not None:
        await conn.execute(
            "INSERT INTO alert_audit (alert_id, actor, action, from_status, to_status, reason)"
            " SELECT alert_id, %s, 'notice_read', status, status, %s FROM alerts WHERE alert_id = %s",
            (actor, f"notice {notice_id} read", row[0]),
        )
        read_at: datetime = row[1]
        return read_at
    cur = await conn.execute(
        "SELECT read_at FROM notices WHERE notice_id = %s AND enterprise_id = %s", (notice_id, enterprise_id)
    )
    again = await cur.fetchone()
    if again is None:
        raise NotFound(f"notice {notice_id} not found")
    first: datetime = again[0]
    return first
