"""Password accounts on the real API and database: sign-in, the audit naming the person, lock-out
across addresses, disabling, enterprise tenancy, password change, and what is stored."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from api import create_app
from tests.api.conftest import bearer, make_key
from tests.lifecycle import Site, open_alert, rows, staffed_site, violation
from vigil.accounts import Hasher
from vigil.settings import Settings

PASSWORD = "kitchen-Watch-2024"
# Cheap argon2 for tests (the production cost is a setting); the rehash test raises it.
CHEAP = {"account_argon2_time_cost": 1, "account_argon2_memory_kib": 8192, "account_argon2_parallelism": 1}


@pytest.fixture
def api_settings(api_settings: Settings) -> Settings:
    return api_settings.model_copy(
        update={
            **CHEAP,
            "account_lockout_failures": 3,
            "account_lockout_s": 30.0,
            "account_lockout_max_s": 600.0,
        }
    )


def _client(app: FastAPI, address: str) -> httpx.AsyncClient:
    """A client whose requests come from `address` (the per-address throttle keys on it)."""
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://test")


@pytest.fixture
async def anon(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(app, "10.0.0.1") as c:
        yield c


async def _create(client: httpx.AsyncClient, supervisor: str, **body: Any) -> httpx.Response:
    return await client.post("/api/v1/accounts", json=body, headers=bearer(supervisor))


async def _login(client: httpx.AsyncClient, username: str, password: str = PASSWORD) -> httpx.Response:
    return await client.post("/api/v1/auth/login", json={"username": username, "password": password})


@pytest.fixture
async def site(pool, uid: str) -> Site:
    return await staffed_site(pool, f"acc{uid}")


async def test_a_staff_member_signs_in_and_the_audit_names_them(client, anon, pool, uid, site: Site) -> None:
    supervisor = await make_key(pool, "supervisor")
    staff_id = site.staff["A"]
    r = await _create(
        client, supervisor, username=f"ZW{uid}", role="operator", staff_id=staff_id, password=PASSWORD
    )
    assert r.status_code == 201, r.text
    assert r.json() == {"username": f"zw{uid}", "temporary_password": None}  # names are lower-cased

    r = await _login(anon, f"ZW{uid}")
    assert r.status_code == 200, r.text
    s = r.json()
    assert s["token"].startswith("vt_") and s["role"] == "operator"
    assert s["must_change"] is True  # a supervisor chose it: the person is asked to change it
    assert (s["subject"], s["account"], s["staff_id"]) == ("handler A", f"zw{uid}", staff_id)
    me = (await anon.get("/api/v1/auth/me", headers=bearer(s["token"]))).json()
    assert me["account"] == f"zw{uid}" and me["staff_id"] == staff_id

    a = await open_alert(pool, violation(site))
    r = await anon.post(
        f"/api/v1/alerts/{a['alert_id']}/ack", json={"note": "on it"}, headers=bearer(s["token"])
    )
    assert r.status_code == 200, r.text
    detail = (await client.get(f"/api/v1/alerts/{a['alert_id']}")).json()
    actors = [e["actor"] for e in detail["audit"] if e["action"] == "operator_acknowledged"]
    assert actors == [f"staff:{staff_id} (handler A)"]

    # Sign-out ends the account's session on the server.
    assert (await anon.delete("/api/v1/auth/session", headers=bearer(s["token"]))).status_code == 204
    assert (await anon.get("/api/v1/alerts", headers=bearer(s["token"]))).status_code == 401


async def test_wrong_passwords_lock_the_account_whatever_the_address(client, app, pool, uid, site) -> None:
    supervisor = await make_key(pool, "supervisor")
    name = f"lock{uid}"
    await _create(
        client, supervisor, username=name, role="operator", staff_id=site.staff["B"], password=PASSWORD
    )
    for n in range(3):  # the policy above: three in a row, each from another address
        async with _client(app, f"10.1.0.{n}") as c:
            r = await _login(c, name, "not-the-password")
            assert r.status_code == 401 and r.json()["detail"] == "wrong username or password"
    async with _client(app, "10.1.0.99") as c:
        # Locked now: even the right password is not looked at.
        r = await _login(c, name)
        assert r.status_code == 429 and 1 <= int(r.headers["Retry-After"]) <= 30, r.text
        assert "locked" in r.json()["detail"]
        # An unknown username answers like a wrong password: nothing says which names exist.
        r = await _login(c, f"nobody{uid}", "whatever-password")
        assert r.status_code == 401 and r.json()["detail"] == "wrong username or password"
        assert (await _login(c, "nul\x00name", "whatever-password")).status_code == 401  # never a 500
    # The lock passes; the next wrong password locks it for twice as long.
    async with pool.connection() as conn:
        await conn.execute("UPDATE accounts SET locked_until = now() WHERE username = %s", (name,))
    async with _client(app, "10.1.0.100") as c:
        assert (await _login(c, name, "still-not-it")).status_code == 401
        r = await _login(c, name)
        assert r.status_code == 429 and 30 < int(r.headers["Retry-After"]) <= 60
    # A supervisor's enable clears the lock; the right password then works and resets the count.
    assert (
        await client.post(f"/api/v1/accounts/{name}/enable", headers=bearer(supervisor))
    ).status_code == 204
    async with _client(app, "10.1.0.101") as c:
        assert (await _login(c, name)).status_code == 200
    assert await rows(pool, "SELECT failed_count, locked_until FROM accounts WHERE username = %s", name) == [
        (0, None)
    ]


async def test_a_disabled_account_is_refused_and_its_sessions_end(client, anon, pool, uid, site) -> None:
    supervisor = await make_key(pool, "supervisor")
    name = f"gone{uid}"
    await _create(
        client, supervisor, username=name, role="supervisor", staff_id=site.staff["C"], password=PASSWORD
    )
    token = (await _login(anon, name)).json()["token"]
    assert (await anon.get("/api/v1/accounts", headers=bearer(token))).status_code == 200  # a supervisor
    assert (
        await client.post(f"/api/v1/accounts/{name}/disable", headers=bearer(supervisor))
    ).status_code == 204
    assert (await anon.get("/api/v1/alerts", headers=bearer(token))).status_code == 401
    r = await _login(anon, name)
    assert r.status_code == 403 and "disabled" in r.json()["detail"]
    assert (await _login(anon, name, "a-wrong-password")).status_code == 401  # no hint without the password
    listed = (await client.get("/api/v1/accounts", headers=bearer(supervisor))).json()
    assert [a["disabled_at"] is not None for a in listed if a["username"] == name] == [True]
    assert (
        await client.post(f"/api/v1/accounts/{name}/enable", headers=bearer(supervisor))
    ).status_code == 204
    assert (await _login(anon, name)).status_code == 200


async def test_an_enterprise_account_sees_only_its_own_data(client, anon, pool, uid, site: Site) -> None:
    """The tenancy walk's probes (tests/api/test_tenancy.py), with an enterprise *account* session."""
    supervisor = await make_key(pool, "supervisor")
    victim = await staffed_site(pool, f"vic{uid}")
    theirs = await open_alert(pool, violation(victim))
    mine = await open_alert(pool, violation(site))
    r = await _create(
        client, supervisor, username=f"mgr{uid}", role="enterprise", enterprise_id=site.enterprise_id,
        display_name="李经理",
    )  # fmt: skip
    assert r.status_code == 201
    temporary = r.json()["temporary_password"]
    s = (await _login(anon, f"mgr{uid}", temporary)).json()
    assert s["must_change"] is True and s["enterprise_id"] == site.enterprise_id and s["subject"] == "李经理"
    me = bearer(s["token"])

    listed = await anon.get("/api/v1/enterprise/alerts", headers=me)
    assert (
        listed.status_code == 200
        and mine["alert_id"] in listed.text
        and victim.enterprise_id not in listed.text
    )
    assert (await anon.get(f"/api/v1/enterprise/alerts/{mine['alert_id']}", headers=me)).status_code == 200
    assert (await anon.get(f"/api/v1/enterprise/alerts/{theirs['alert_id']}", headers=me)).status_code == 404
    for path in ("/api/v1/alerts", f"/api/v1/alerts/{theirs['alert_id']}", "/api/v1/accounts"):
        r = await anon.get(path, headers=me, params={"enterprise_id": victim.enterprise_id})
        assert r.status_code in (403, 404) and victim.site_id not in r.text, path
    # Acting on its own alert is audited under the person, within the enterprise.
    r = await anon.post(f"/api/v1/enterprise/alerts/{mine['alert_id']}/acknowledge", json={}, headers=me)
    assert r.status_code == 200, r.text
    actors = await rows(
        pool,
        "SELECT actor FROM alert_audit WHERE alert_id = %s AND action = 'acknowledged'",
        mine["alert_id"],
    )
    assert actors == [(f"enterprise:{site.enterprise_id}:account:mgr{uid} (李经理)",)]


async def test_a_password_change_needs_the_old_password(client, app, pool, uid, site) -> None:
    supervisor = await make_key(pool, "supervisor")
    name = f"chg{uid}"
    await _create(
        client, supervisor, username=name, role="operator", staff_id=site.staff["A"], password=PASSWORD
    )
    async with _client(app, "10.2.0.1") as c:
        token = (await _login(c, name)).json()["token"]
        other = (await _login(c, name)).json()["token"]
        me = bearer(token)
        change = {"old_password": "wrong-old-password", "new_password": "a-new-Password-99"}
        r = await c.post("/api/v1/auth/password", json=change, headers=me)
        assert r.status_code == 403 and "current password" in r.json()["detail"]
        for weak, why in (
            (f"{name}-2024xx", "username"),
            ("short", "10 characters"),
            ("password123", "common"),
        ):
            r = await c.post(
                "/api/v1/auth/password", json={"old_password": PASSWORD, "new_password": weak}, headers=me
            )
            assert r.status_code == 422 and why in r.json()["detail"], (weak, r.text)
        r = await c.post("/api/v1/auth/password", json={**change, "old_password": PASSWORD}, headers=me)
        assert r.status_code == 204, r.text
        assert (await c.get("/api/v1/auth/me", headers=me)).status_code == 200  # this session stays
        assert (await c.get("/api/v1/auth/me", headers=bearer(other))).status_code == 401  # others end
        assert (await _login(c, name)).status_code == 401
        assert (await _login(c, name, "a-new-Password-99")).status_code == 200
    # A key has no password to change.
    r = await client.post("/api/v1/auth/password", json=change, headers=bearer(supervisor))
    assert r.status_code == 400


async def test_only_an_argon2_hash_is_stored_and_it_is_upgraded(
    client, anon, pool, uid, site, api_settings
) -> None:
    supervisor = await make_key(pool, "supervisor")
    name = f"hash{uid}"
    await _create(
        client, supervisor, username=name, role="operator", staff_id=site.staff["B"], password=PASSWORD
    )
    [(stored,)] = await rows(pool, "SELECT password_hash FROM accounts WHERE username = %s", name)
    assert stored.startswith("$argon2id$v=19$m=8192,t=1,p=1$") and PASSWORD not in stored
    everything = await rows(pool, "SELECT row_to_json(a)::text FROM accounts a WHERE username = %s", name)
    assert PASSWORD not in everything[0][0]
    assert Hasher(time_cost=1, memory_kib=8192, parallelism=1).verify(stored, PASSWORD)[0]

    # The cost is raised: the next sign-in rehashes with the new parameters.
    stronger = create_app(api_settings.model_copy(update={"account_argon2_time_cost": 2}))
    async with stronger.router.lifespan_context(stronger), _client(stronger, "10.3.0.1") as c:
        assert (await _login(c, name)).status_code == 200
    [(rehashed,)] = await rows(pool, "SELECT password_hash FROM accounts WHERE username = %s", name)
    assert rehashed.startswith("$argon2id$v=19$m=8192,t=2,p=1$")
    assert (await _login(anon, name)).status_code == 200  # still the same password


async def test_supervisors_manage_accounts_and_others_may_not(client, anon, pool, uid, site) -> None:
    supervisor, operator = await make_key(pool, "supervisor"), await make_key(pool, "operator")
    body = {"username": f"x{uid}", "role": "operator", "staff_id": site.staff["A"]}
    assert (await _create(client, operator, **body)).status_code == 403
    assert (await _create(client, supervisor, **body, password="password123")).status_code == 422
    r = await _create(client, supervisor, **{**body, "staff_id": f"nobody-{uid}"})
    assert r.status_code == 422 and "not found" in r.json()["detail"]
    r = await _create(client, supervisor, **body, enterprise_id=site.enterprise_id)
    assert r.status_code == 422  # a bureau account belongs to no enterprise
    r = await _create(client, supervisor, **body)
    temporary = r.json()["temporary_password"]
    assert r.status_code == 201 and len(temporary) >= 10
    assert (
        await _create(client, supervisor, **{**body, "staff_id": site.staff["B"]})
    ).status_code == 422  # taken
    token = (await _login(anon, f"x{uid}", temporary)).json()["token"]
    r = await client.post(f"/api/v1/accounts/x{uid}/password", headers=bearer(supervisor))
    assert r.status_code == 200 and r.json()["temporary_password"] not in (None, temporary)
    assert (
        await anon.get("/api/v1/auth/me", headers=bearer(token))
    ).status_code == 401  # reset ends sessions
    assert (
        await client.post(f"/api/v1/accounts/none{uid}/disable", headers=bearer(supervisor))
    ).status_code == 404


def _cli(settings: Settings, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = os.environ | {"VIGIL_DATABASE_URL": settings.database_url or "", "VIGIL_MODE": "production"}
    env |= {"VIGIL_ACCOUNT_ARGON2_TIME_COST": "1", "VIGIL_ACCOUNT_ARGON2_MEMORY_KIB": "8192"}
    return subprocess.run(
        [sys.executable, "-m", "shell.cli", "accounts", *args],
        env=env, input=stdin, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


async def test_the_accounts_command_adds_resets_and_disables(anon, pool, uid, site, api_settings) -> None:
    name = f"cli{uid}"
    done = _cli(api_settings, "add", name, "--role", "supervisor", "--staff", site.staff["C"])
    assert done.returncode == 0, done.stderr
    temporary = done.stdout.splitlines()[-1].rsplit(" ", 1)[1]
    assert "handler C" in done.stdout and (await _login(anon, name, temporary)).status_code == 200
    done = _cli(api_settings, "passwd", name, "--password-stdin", stdin="password123\n")
    assert done.returncode == 2 and "too common" in done.stderr  # refused before anything is written
    done = _cli(api_settings, "passwd", name, "--password-stdin", stdin=f"{PASSWORD}\n")
    assert done.returncode == 0 and PASSWORD not in done.stdout, done.stderr
    assert (await _login(anon, name)).status_code == 200
    assert _cli(api_settings, "disable", name).returncode == 0
    assert (await _login(anon, name)).status_code == 403
    listed = _cli(api_settings, "list")
    assert name in listed.stdout and "(disabled)" in listed.stdout
    refused = _cli(api_settings, "add", f"ent{uid}", "--role", "enterprise", "--staff", site.staff["A"])
    assert refused.returncode == 2 and "enterprise" in refused.stderr
