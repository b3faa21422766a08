"""The public window's audit trail over the real app and PostgreSQL: publishing, re-publishing,
unpublishing and each camera put on or taken off are recorded with who and when, newest first; a
camera ticked twice is one row; the bureau reads every name, the enterprise its own people's and
only "bureau" for staff; another enterprise gets a 404; the rows cannot be changed."""

from __future__ import annotations

from typing import Any

import httpx
import psycopg
import pytest

from tests.api.conftest import bearer, make_key
from vigil.cameras import register_camera


async def test_every_publishing_change_is_audited_in_the_callers_scope(
    client: httpx.AsyncClient, pool: Any, uid: str
) -> None:
    ent, site = f"ent-{uid}", f"site-{uid}"
    cams = [f"a-{uid}", f"b-{uid}"]
    for cam in cams:
        await register_camera(pool, enterprise_id=ent, site_id=site, camera_id=cam, source="push")
    own, operator = await make_key(pool, "enterprise", ent), await make_key(pool, "operator")
    async with pool.connection() as conn:
        await conn.execute("INSERT INTO enterprises (enterprise_id, name) VALUES (%s, 's')", (f"x-{uid}",))
    stranger = await make_key(pool, "enterprise", f"x-{uid}")
    admin = f"/api/v1/sites/{site}/public-window"

    state = (await client.get(admin, headers=bearer(own))).json()
    assert state["site_cameras"] == sorted(cams) and not state["published"]
    assert (await client.get(f"{admin}/audit", headers=bearer(own))).json() == {"items": []}
    for method, path in [
        ("POST", ""),  # published
        ("POST", ""),  # republished: the first link ends
        ("PUT", f"/cameras/{cams[0]}"),
        ("PUT", f"/cameras/{cams[0]}"),  # already shown: no second row
        ("PUT", f"/cameras/{cams[1]}"),
        ("DELETE", f"/cameras/{cams[1]}"),
        ("DELETE", f"/cameras/{cams[1]}"),  # already off: no row
    ]:
        r = await client.request(method, admin + path, headers=bearer(own))
        assert r.status_code in (200, 204), (method, path, r.text)
    assert (await client.delete(admin, headers=bearer(operator))).status_code == 204

    expected = [
        ("unpublished", None, "bureau"),
        ("camera_removed", cams[0], "bureau"),  # the unpublishing took it off
        ("camera_removed", cams[1], "enterprise"),
        ("camera_added", cams[1], "enterprise"),
        ("camera_added", cams[0], "enterprise"),
        ("republished", None, "enterprise"),
        ("published", None, "enterprise"),
    ]
    bureau = (await client.get(f"{admin}/audit", headers=bearer(operator))).json()["items"]
    assert [(e["action"], e["camera_id"], e["by"]) for e in bureau] == expected
    assert all(e["actor"].startswith("operator:") for e in bureau[:2])
    assert all(e["actor"].startswith(f"enterprise:{ent}:") for e in bureau[2:])
    times = [e["at"] for e in bureau]
    assert times == sorted(times, reverse=True)

    mine = (await client.get(f"{admin}/audit", headers=bearer(own))).json()["items"]
    assert [(e["action"], e["camera_id"], e["by"]) for e in mine] == expected
    # Staff names stay the bureau's; the enterprise's own people are named.
    assert [e["actor"] for e in mine[:2]] == [None, None]
    assert [e["actor"] for e in mine[2:]] == [e["actor"] for e in bureau[2:]]
    latest = await client.get(f"{admin}/audit", params={"limit": 2}, headers=bearer(own))
    assert [e["action"] for e in latest.json()["items"]] == ["unpublished", "camera_removed"]

    assert (await client.get(f"{admin}/audit", headers=bearer(stranger))).status_code == 404

    async with pool.connection() as conn:
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            await conn.execute("DELETE FROM public_window_audit WHERE site_id = %s", (site,))


async def test_a_camera_moved_to_another_site_leaves_the_old_window_and_its_audit_says_so(
    client: httpx.AsyncClient, pool: Any, uid: str
) -> None:
    ent, old, new, cam = f"ent-{uid}", f"site-{uid}", f"site2-{uid}", f"cam-{uid}"
    await register_camera(pool, enterprise_id=ent, site_id=old, camera_id=cam, source="push")
    await register_camera(pool, enterprise_id=ent, site_id=new, camera_id=f"other-{uid}", source="push")
    own = await make_key(pool, "enterprise", ent)
    link = (await client.post(f"/api/v1/sites/{old}/public-window", headers=bearer(own))).json()
    assert (
        await client.put(f"/api/v1/sites/{old}/public-window/cameras/{cam}", headers=bearer(own))
    ).status_code == 204
    assert f"/cameras/{cam}.mjpg" in (await client.get(f"/public/w/{link['token']}")).text

    # Moved by the command line (no API principal): the trail is the database's, whatever the path.
    await register_camera(pool, enterprise_id=ent, site_id=new, camera_id=cam, source="push")
    assert f"/cameras/{cam}.mjpg" not in (await client.get(f"/public/w/{link['token']}")).text
    state = (await client.get(f"/api/v1/sites/{old}/public-window", headers=bearer(own))).json()
    assert state["cameras"] == []
    trail = (await client.get(f"/api/v1/sites/{old}/public-window/audit", headers=bearer(own))).json()[
        "items"
    ]
    assert [(e["action"], e["camera_id"], e["by"]) for e in trail[:2]] == [
        ("camera_removed", cam, "system"),
        ("camera_added", cam, "enterprise"),
    ]
    # On its new site it is shown only once someone shows it there, and that is audited there.
    assert (
        await client.put(f"/api/v1/sites/{new}/public-window/cameras/{cam}", headers=bearer(own))
    ).status_code == 204
    there = (await client.get(f"/api/v1/sites/{new}/public-window/audit", headers=bearer(own))).json()[
        "items"
    ]
    assert [(e["action"], e["camera_id"]) for e in there] == [("camera_added", cam)]
