"""`vigil devices register` attribute typing and profile checks, and `vigil devices token`, as a user
runs them: the real command in a subprocess against the session's PostgreSQL."""

from __future__ import annotations

import pytest

from shell.admin import parse_attribute
from tests.shell.test_admin import vigil
from vigil.errors import VigilError
from vigil.keys import device_for_token


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("location=floor-2", ("location", "floor-2")),
        ("model=true-cold", ("model", "true-cold")),
        ("note=[draft]", ("note", "[draft]")),
        ("duration_s=60", ("duration_s", 60)),
        ("max_temp_c=-20.5", ("max_temp_c", -20.5)),
        ("alarm=true", ("alarm", True)),
        ("alarm=false", ("alarm", False)),
        ("code=007", ("code", 7)),
        ('code:="007"', ("code", "007")),
        ("limit:=1e3", ("limit", 1000.0)),
        ("empty=", ("empty", "")),
        ("inf=inf", ("inf", "inf")),
    ],
)
def test_attribute_values_are_typed_predictably(item: str, expected: tuple[str, object]) -> None:
    assert parse_attribute(item) == expected


@pytest.mark.parametrize("item", ["novalue", "bad key=1", "j:={not json", "j:=[1, 2]", "=1"])
def test_malformed_attributes_say_what_is_expected(item: str) -> None:
    with pytest.raises(VigilError, match="--attr"):
        parse_attribute(item)


async def test_register_types_attributes_and_refuses_what_the_profile_cannot_take(settings, pool, uid):
    base = ["devices", "register", "--enterprise", f"ent-{uid}", "--site", f"site-{uid}"]
    done = vigil(settings, *base, "--device", f"f-{uid}", "--profile", "freezer",
                 "--attr", "location=floor-2", "--attr", "duration_s=60")  # fmt: skip
    assert done.returncode == 0, done.stderr
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT attributes FROM devices WHERE device_id = %s", (f"f-{uid}",))
        assert await cur.fetchone() == ({"location": "floor-2", "duration_s": 60},)

    bad_type = vigil(
        settings, *base, "--device", f"g-{uid}", "--profile", "freezer", "--attr", "duration_s=abc"
    )
    assert bad_type.returncode == 2 and "duration_s must be a number" in bad_type.stderr, bad_type.stderr
    unknown = vigil(settings, *base, "--device", f"h-{uid}", "--profile", "freezr")
    assert unknown.returncode == 2, unknown.stderr
    assert "unknown profile 'freezr'; known profiles:" in unknown.stderr and "freezer" in unknown.stderr
    assert "Traceback" not in bad_type.stderr + unknown.stderr
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM devices WHERE device_id IN (%s, %s)", (f"g-{uid}", f"h-{uid}")
        )
        assert await cur.fetchone() == (0,)


async def test_device_token_issue_and_revoke(settings, pool, uid):
    done = vigil(settings, "devices", "register", "--enterprise", f"ent-{uid}", "--site", f"site-{uid}",
                 "--device", f"tb-{uid}", "--profile", "freezer")  # fmt: skip
    assert done.returncode == 0, done.stderr
    issued = vigil(settings, "devices", "token", "issue", f"tb-{uid}")
    assert issued.returncode == 0, issued.stderr
    token = issued.stdout.splitlines()[1]
    async with pool.connection() as conn:
        found = await device_for_token(conn, token)
    assert found is not None and found.device_id == f"tb-{uid}"
    revoked = vigil(settings, "devices", "token", "revoke", f"tb-{uid}")
    assert revoked.returncode == 0 and "token revoked" in revoked.stdout
    async with pool.connection() as conn:
        assert await device_for_token(conn, token) is None
    missing = vigil(settings, "devices", "token", "issue", f"none-{uid}")
    assert missing.returncode == 2 and "not found" in missing.stderr
