"""The bureau's staff and who handles which site (A primary, B backup, C specialist).

Marking someone away re-routes the alerts they hold, each with an audit row: an alert must not sit
with an inspector on leave until they come back.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from alerts.lifecycle import ACTIVE, move
from alerts.policy import pick_handler
from vigil.errors import InvalidRequest, NotFound

_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _check_id(value: str, what: str) -> str:
    if not _ID.match(value):
        raise InvalidRequest(f"{what} must be 1-64 letters, digits, '_' or '-'; got {value!r}")
    return value


async def upsert_staff(conn: AsyncConnection[Any], staff_id: str, name: str) -> None:
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidRequest("a staff member needs a name of 1-200 characters")
    await conn.execute(
        "INSERT INTO staff (staff_id, name) VALUES (%s, %s)"
        " ON CONFLICT (staff_id) DO UPDATE SET name = EXCLUDED.name, updated_at = now()",
        (_check_id(staff_id, "staff id"), name),
    )


async def set_handlers(conn: AsyncConnection[Any], site_id: str, handlers: Mapping[str, str | None]) -> None:
    """Set the site's A/B/C handlers; a slot given as None is cleared, one left out is kept."""
    if not await (await conn.execute("SELECT 1 FROM sites WHERE site_id = %s", (site_id,))).fetchone():
        raise NotFound(f"site {site_id} not found")
    for slot, staff_id in handlers.items():
        if slot not in ("A", "B", "C"):
            raise InvalidRequest(f"slot must be A, B or C; got {slot!r}")
        if staff_id is None:
            await conn.execute("DELETE FROM site_handlers WHERE site_id = %s AND slot = %s", (site_id, slot))
            continue
        if not await (await conn.execute("SELECT 1 FROM staff WHERE staff_id = %s", (staff_id,))).fetchone():
            raise NotFound(f"staff member {staff_id} not found")
        await conn.execute(
            "INSERT INTO site_handlers (site_id, slot, staff_id) VALUES (%s, %s, %s)"
            " ON CONFLICT (site_id, slot) DO UPDATE SET staff_id = EXCLUDED.staff_id",
            (site_id, slot, staff_id),
        )


async def set_away(conn: AsyncConnection[Any], staff_id: str, away: bool, *, actor: str) -> list[str]:
    """Mark a staff member away (or back). Going away re-routes every active alert they hold to the
    next present handler of its site; returns the ids of the alerts moved."""
    cur = await conn.execute(
        "UPDATE staff SET away = %s, updated_at = now() WHERE staff_id = %s RETURNING staff_id",
        (away, staff_id),
    )
    if await cur.fetchone() is None:
        raise NotFound(f"staff member {staff_id} not found")
    if not away:
        return []
    async with conn.cursor(row_factory=dict_row) as dcur:
        await dcur.execute(
            "SELECT *, now() AS now FROM alerts WHERE assignee = %s AND status = ANY(%s)"
            " ORDER BY alert_id FOR UPDATE",
            (staff_id, sorted(ACTIVE)),
        )
        held = await dcur.fetchall()
    moved = []
    for alert in held:
        specialist = alert["difficult"] or alert["status"] == "escalated"
        new_staff, slot = await pick_handler(conn, alert["site_id"], "specialist" if specialist else "new")
        if new_staff is None or new_staff == staff_id:
            continue  # nobody else present: it stays visible in their queue rather than vanish
        await move(
            conn, alert, "reassigned", actor=actor, reason=f"{staff_id} is away; to {new_staff} ({slot})",
            changes={"assignee": new_staff, "assigned_slot": slot},
        )  # fmt: skip
        moved.append(alert["alert_id"])
    return moved
