"""Helpers for lifecycle tests: violations for a staffed site, and one-transaction moves."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from alerts import lifecycle
from alerts.policy import Policy
from alerts.store import apply_violation
from vigil.events import Violation, violation_id

POLICY = Policy(
    lookback=timedelta(days=730), follow_up_after=timedelta(days=30), public_url="https://vigil.test"
)
OPERATOR = "operator:wang"
PHOTO = "ab" * 32


@dataclass
class Site:
    enterprise_id: str
    site_id: str
    staff: dict[str, str]  # slot -> staff id

    def enterprise_actor(self) -> str:
        return f"enterprise:{self.enterprise_id}"


async def staffed_site(pool: Any, uid: str) -> Site:
    """An enterprise with one site whose A, B and C handlers are all present."""
    ent, site_id = f"ent-{uid}", f"site-{uid}"
    staff = {slot: f"staff-{slot.lower()}-{uid}" for slot in "ABC"}
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO enterprises (enterprise_id, name) VALUES (%s, 'Noodle House')", (ent,)
        )
        await conn.execute(
            "INSERT INTO sites (site_id, enterprise_id, name, district) VALUES (%s, %s, 'kitchen', 'Xuhui')",
            (site_id, ent),
        )
        for slot, staff_id in staff.items():
            await conn.execute(
                "INSERT INTO staff (staff_id, name) VALUES (%s, %s)", (staff_id, f"handler {slot}")
            )
            await conn.execute(
                "INSERT INTO site_handlers (site_id, slot, staff_id) VALUES (%s, %s, %s)",
                (site_id, slot, staff_id),
            )
    return Site(ent, site_id, staff)


def violation(
    site: Site, code: str = "KITCHEN_SMOKING", *, source: str = "cam-1", at: datetime | None = None
):
    at = at or datetime.now(UTC)
    ms = int(at.timestamp() * 1000)
    source_id = f"{source}-{site.site_id}"
    return Violation(
        violation_id=violation_id("camera", source_id, code, ms),
        code=code,
        state="active",
        enterprise_id=site.enterprise_id,
        site_id=site.site_id,
        source_kind="camera",
        source_id=source_id,
        window_start=ms,
        detected_at=ms,
        severity="major",
        detector="yolo-kitchen",
        summary=f"{code} seen",
        evidence={"snapshot_sha256": "cd" * 32},
    )


async def open_alert(pool, v: Violation) -> dict[str, Any]:
    async with pool.connection() as conn, conn.transaction():
        assert await apply_violation(conn, v, POLICY) == "opened"
    return await alert(pool, v.violation_id)


async def alert(pool, alert_id: str) -> dict[str, Any]:
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT * FROM alerts WHERE alert_id = %s", (alert_id,))
        assert cur.description is not None
        names = [c.name for c in cur.description]
        row = await cur.fetchone()
        assert row is not None
        return dict(zip(names, row, strict=True))


async def act(pool, fn, *args: Any, **kwargs: Any) -> dict[str, Any]:
    async with pool.connection() as conn, conn.transaction():
        return await fn(conn, *args, **kwargs)


async def rows(pool, query: str, *args: object) -> list[tuple]:
    async with pool.connection() as conn:
        return await (await conn.execute(query, args)).fetchall()


async def notices(pool, alert_id: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        (r[0], r[1])
        for r in await rows(
            pool, "SELECT notice_id, payload FROM notices WHERE alert_id=%s ORDER BY created_at", alert_id
        )
    ]


async def trail(pool, alert_id: str) -> list[tuple[str, str | None, str | None]]:
    return [
        tuple(r)
        for r in await rows(
            pool,
            "SELECT action, from_status, to_status FROM alert_audit WHERE alert_id=%s ORDER BY audit_id",
            alert_id,
        )
    ]


async def submit(pool, site: Site, alert_id: str, text: str = "fixed it") -> dict[str, Any]:
    return await act(
        pool, lifecycle.submit_rectification, alert_id,
        enterprise_id=site.enterprise_id, actor=site.enterprise_actor(), description=text, photos=[PHOTO],
    )  # fmt: skip
