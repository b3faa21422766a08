"""MQTT notices are signed with the enterprise's notice secret and verify with the webhook's helper:
a real subscriber on the real broker receives one from the real notifier and checks it; a tampered,
re-signed-with-another-secret or unsigned one is refused."""

from __future__ import annotations

import secrets
import time

import orjson
from pydantic import SecretStr

from alerts.notices import notice_secret
from alerts.notifier import Notifier
from alerts.webhook import sign, sign_notice, split_signed_notice, verify, verify_notice
from tests.alerts.test_store import apply, violation
from tests.helpers import MqttTail
from vigil.topics import notices_topic


async def test_a_notice_received_over_mqtt_verifies_and_a_tampered_one_does_not(settings, pool, uid):
    key = secrets.token_urlsafe(32)
    s = settings.model_copy(update={"notice_signing_key": SecretStr(key), "outbox_poll_interval_s": 0.2})
    v = violation(uid)
    async with Notifier(s), MqttTail(s.mqtt_url, notices_topic(v.enterprise_id)) as notices:
        await apply(pool, v)
        _, raw = await notices.next(timeout=60)

    secret = notice_secret(key, v.enterprise_id)
    notice = verify_notice(secret, raw)
    assert notice is not None and notice["alert_id"] == v.violation_id
    # Existing subscribers read the fields where they always were; the signature is one more member.
    plain = orjson.loads(raw)
    assert plain["code"] == "COLD_CHAIN_FREEZER_WARM" and plain["signature"].startswith("t=")
    # The same helper as webhooks: the body without the signature member, X-Vigil-Signature's format.
    body, signature = split_signed_notice(raw) or (b"", "")
    assert verify(secret, signature, body) and orjson.loads(body) == notice

    assert verify_notice(secret, raw.replace(b"COLD_CHAIN_FREEZER_WARM", b"COLD_CHAIN_CHILLER_WARM")) is None
    assert verify_notice(notice_secret(key, f"other-{uid}"), raw) is None  # another enterprise's secret
    assert verify_notice(notice_secret(secrets.token_urlsafe(32), v.enterprise_id), raw) is None
    forged = sign_notice(notice_secret("a guess at the key", v.enterprise_id), notice, int(time.time()))
    assert verify_notice(secret, forged) is None
    assert verify_notice(secret, body) is None  # unsigned


def test_signed_payloads_split_back_into_the_exact_webhook_body() -> None:
    notice = {"notice_id": "a:opened", "summary": 'quote " and \\ and 中文', "signature_like": "x"}
    now = int(time.time())
    payload = sign_notice("s" * 32, notice, now)
    body, signature = split_signed_notice(payload) or (b"", "")
    assert body == orjson.dumps(notice) and signature == sign("s" * 32, body, now)
    # Old signatures still verify by default (a persistent session delivers late), unless asked.
    old = sign_notice("s" * 32, notice, now - 86_400)
    assert verify_notice("s" * 32, old) == notice
    assert verify_notice("s" * 32, old, tolerance_s=300) is None
    for broken in (b"", b"{}", payload[:-1], payload + b" ", payload.replace(b'"}', b'\\"}')):
        assert verify_notice("s" * 32, broken) is None
