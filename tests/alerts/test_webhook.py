"""Webhook signatures (what a receiver checks) and setting an enterprise's webhook on the real
PostgreSQL."""

from __future__ import annotations

import time

import pytest
from psycopg_pool import AsyncConnectionPool

from alerts.webhook import InvalidWebhookUrl, new_secret, set_webhook, sign, verify
from tests.alerts.test_store import rows
from vigil.errors import InvalidRequest, NotFound

BODY = b'{"notice_id":"a1:opened","kind":"opened"}'


def test_a_signature_verifies_with_its_secret_body_and_time() -> None:
    secret, now = new_secret(), time.time()
    header = sign(secret, BODY, int(now))
    assert header.startswith(f"t={int(now)},v1=") and len(header.rpartition("v1=")[2]) == 64
    assert verify(secret, header, BODY)
    assert verify(secret, header, BODY, now=now + 299)
    # A receiver also accepts a header with several v1 entries when one of them matches.
    assert verify(secret, f"{header},v1={'0' * 64}", BODY)


def test_tampered_wrong_secret_malformed_and_stale_signatures_are_refused() -> None:
    secret, now = new_secret(), int(time.time())
    header = sign(secret, BODY, now)
    mac = header.rpartition("v1=")[2]
    assert not verify(secret, header, BODY.replace(b"opened", b"closed"))
    assert not verify(new_secret(), header, BODY)
    # Signed over "<t>." + body: moving the timestamp breaks the signature.
    assert not verify(secret, f"t={now + 1},v1={mac}", BODY)
    for malformed in (
        "",
        mac,
        f"v1={mac}",
        f"t={now}",
        f"t=soon,v1={mac}",
        f"t=-{now},v1={mac}",
        f"t={now},t={now},v1={mac}",
        f"t={now};v1={mac}",
        f"t={now},v1={mac[:-1]}é",
    ):
        assert not verify(secret, malformed, BODY), malformed
    assert not verify(secret, header, BODY, now=now + 301)
    assert not verify(secret, header, BODY, now=now - 301)  # from the future
    assert not verify(secret, header, BODY, now=now + 11, tolerance_s=10)


def test_secrets_are_long_and_fresh() -> None:
    one, two = new_secret(), new_secret()
    assert one != two and len(one) >= 32  # the schema refuses shorter ones


async def test_set_webhook_stores_a_fresh_secret_and_clears_both(pool: AsyncConnectionPool, uid: str) -> None:
    enterprise = f"ent-{uid}"
    async with pool.connection() as conn:
        await conn.execute("INSERT INTO enterprises (enterprise_id, name) VALUES (%s, %s)", (enterprise, uid))
        first = await set_webhook(conn, enterprise, "HTTPS://erp.example.com:8443/vigil?x=1")
    assert await rows(pool, "SELECT webhook_url FROM enterprises WHERE enterprise_id=%s", enterprise) == [
        ("https://erp.example.com:8443/vigil?x=1",)  # the schema's check wants a lower-case scheme
    ]
    async with pool.connection() as conn:
        second = await set_webhook(conn, enterprise, "http://10.0.0.5/hook")
    assert first and second and first != second
    [(url, secret)] = await rows(
        pool, "SELECT webhook_url, webhook_secret FROM enterprises WHERE enterprise_id=%s", enterprise
    )
    assert (url, secret) == ("http://10.0.0.5/hook", second)
    async with pool.connection() as conn:
        assert await set_webhook(conn, enterprise, None) is None
    assert await rows(
        pool, "SELECT webhook_url, webhook_secret FROM enterprises WHERE enterprise_id=%s", enterprise
    ) == [(None, None)]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://erp.example.com/in", "http:// or https://"),
        ("erp.example.com/hook", "http:// or https://"),
        ("javascript:alert(1)", "http:// or https://"),
        ("https:///path-only", "no host"),
        ("https://erp.example.com:99999/", "malformed"),
        ("https://erp.example.com/a b", "whitespace"),
        ("https://erp.example.com/\r\nX-Injected: 1", "whitespace"),
        ("https://erp.example.com/" + "a" * 3000, "longer than"),
    ],
)
async def test_set_webhook_refuses_what_is_not_an_http_url(
    pool: AsyncConnectionPool, uid: str, url: str, message: str
) -> None:
    enterprise = f"ent-{uid}"
    async with pool.connection() as conn:
        await conn.execute("INSERT INTO enterprises (enterprise_id, name) VALUES (%s, %s)", (enterprise, uid))
        with pytest.raises(InvalidWebhookUrl, match=message) as refused:
            await set_webhook(conn, enterprise, url)
    assert isinstance(refused.value, ValueError) and isinstance(refused.value, InvalidRequest)
    assert await rows(pool, "SELECT webhook_url FROM enterprises WHERE enterprise_id=%s", enterprise) == [
        (None,)
    ]


async def test_set_webhook_for_an_unknown_enterprise_says_so(pool: AsyncConnectionPool, uid: str) -> None:
    async with pool.connection() as conn:
        with pytest.raises(NotFound, match=f"ent-{uid} does not exist"):
            await set_webhook(conn, f"ent-{uid}", "https://erp.example.com/hook")
        with pytest.raises(NotFound):
            await set_webhook(conn, f"ent-{uid}", None)
