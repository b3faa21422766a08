"""API keys, browser sessions and roles, against the real key tables."""

from __future__ import annotations

import httpx

from tests.api.conftest import Seeder, bearer, make_key


async def test_a_key_authenticates_and_says_who_it_is(client: httpx.AsyncClient, pool, seed: Seeder) -> None:
    key = await make_key(pool, "enterprise", seed.enterprise)
    r = await client.get("/api/v1/auth/me", headers=bearer(key))
    assert r.status_code == 200
    assert r.json() == {"subject": "test enterprise", "role": "enterprise", "enterprise_id": seed.enterprise}


async def test_only_the_hash_of_a_key_is_stored(pool, supervisor_key: str) -> None:
    key_id = supervisor_key.split("_")[1]
    async with pool.connection() as conn:
        stored = await (await conn.execute("SELECT * FROM api_keys WHERE key_id=%s", (key_id,))).fetchone()
    assert stored is not None
    assert not any(isinstance(v, str) and supervisor_key.split("_", 2)[2] in v for v in stored)


async def test_wrong_secret_unknown_key_and_garbage_are_401(
    client: httpx.AsyncClient, supervisor_key: str
) -> None:
    key_id = supervisor_key.split("_")[1]
    forged = f"vigil_{key_id}_{'A' * 43}"
    for credential in (forged, "vigil_000000000000_" + "B" * 43, "vt_" + "C" * 43, "x" * 5000, "é"):
        # latin-1 on the wire, as a client sending a non-ASCII header would
        header = f"Bearer {credential}".encode("latin-1")
        r = await client.get("/api/v1/auth/me", headers={"Authorization": header})
        assert r.status_code == 401, credential[:20]


async def test_a_browser_session_works_until_it_expires_or_its_key_is_revoked(
    client: httpx.AsyncClient, pool, operator_key: str, supervisor_key: str
) -> None:
    r = await client.post("/api/v1/auth/session", headers=bearer(operator_key))
    assert r.status_code == 200, r.text
    session = r.json()
    assert session["role"] == "operator" and session["token"].startswith("vt_")
    assert (await client.get("/api/v1/alerts", headers=bearer(session["token"]))).status_code == 200
    # A session cannot open another session: only keys can.
    assert (await client.post("/api/v1/auth/session", headers=bearer(session["token"]))).status_code == 400

    second = (await client.post("/api/v1/auth/session", headers=bearer(operator_key))).json()["token"]
    async with pool.connection() as conn:  # the first one's hour is up
        await conn.execute(
            "UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE key_id=%s"
            " AND token_sha256 = sha256(%s::bytea)",
            (operator_key.split("_")[1], session["token"].encode()),
        )
    assert (await client.get("/api/v1/alerts", headers=bearer(session["token"]))).status_code == 401
    assert (await client.get("/api/v1/alerts", headers=bearer(second))).status_code == 200

    key_id = operator_key.split("_")[1]
    assert (await client.delete(f"/api/v1/keys/{key_id}", headers=bearer(supervisor_key))).status_code == 204
    assert (await client.get("/api/v1/alerts", headers=bearer(operator_key))).status_code == 401
    assert (await client.get("/api/v1/alerts", headers=bearer(second))).status_code == 401


async def test_roles_gate_the_routes(
    client: httpx.AsyncClient, pool, seed: Seeder, operator_key: str
) -> None:
    enterprise_key = await make_key(pool, "enterprise", seed.enterprise)
    # Enterprise keys never reach the monitoring centre's routes.
    for path in ("/api/v1/alerts", "/api/v1/stats", "/api/v1/visits", "/api/v1/keys"):
        assert (await client.get(path, headers=bearer(enterprise_key))).status_code == 403, path
    # Operators work alerts but do not manage keys.
    assert (await client.get("/api/v1/alerts", headers=bearer(operator_key))).status_code == 200
    assert (await client.get("/api/v1/keys", headers=bearer(operator_key))).status_code == 403
    body = {"name": "x", "role": "supervisor"}
    assert (await client.post("/api/v1/keys", json=body, headers=bearer(operator_key))).status_code == 403


async def test_supervisors_create_list_and_revoke_keys(
    client: httpx.AsyncClient, seed: Seeder, supervisor_key: str
) -> None:
    h = bearer(supervisor_key)
    r = await client.post(
        "/api/v1/keys",
        json={"name": "ERP", "role": "enterprise", "enterprise_id": seed.enterprise},
        headers=h,
    )
    assert r.status_code == 201, r.text
    created = r.json()
    assert (await client.get("/api/v1/auth/me", headers=bearer(created["key"]))).json()[
        "enterprise_id"
    ] == seed.enterprise
    listed = {k["key_id"]: k for k in (await client.get("/api/v1/keys", headers=h)).json()}
    assert listed[created["key_id"]]["role"] == "enterprise" and "key" not in listed[created["key_id"]]
    # An enterprise key needs its enterprise, a bureau key none, and the enterprise must exist.
    for bad in (
        {"name": "x", "role": "enterprise"},
        {"name": "x", "role": "operator", "enterprise_id": seed.enterprise},
        {"name": "x", "role": "enterprise", "enterprise_id": "no-such-enterprise"},
    ):
        assert (await client.post("/api/v1/keys", json=bad, headers=h)).status_code == 422, bad
    assert (await client.delete("/api/v1/keys/000000000000", headers=h)).status_code == 404
