"""Supervision and false-alarm statistics over alerts seeded by SQL into the real PostgreSQL."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool

from alerts.stats import FalseAlarmRow, StatsRow, false_alarm_stats, supervision_stats

SINCE = datetime(2023, 1, 1, tzinfo=UTC)
UNTIL = datetime(2023, 4, 1, tzinfo=UTC)


def at(month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, year: int = 2023) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


@dataclass(frozen=True)
class Scenario:
    """Ids of one test's registry; every one carries the test's uid."""

    uid: str

    @property
    def e1(self) -> str:
        return f"ent-{self.uid}"

    @property
    def e2(self) -> str:
        return f"ent2-{self.uid}"

    @property
    def s1(self) -> str:  # e1, district d1
        return f"site-{self.uid}"

    @property
    def s2(self) -> str:  # e1, no district
        return f"site2-{self.uid}"

    @property
    def s3(self) -> str:  # e2, district d2
        return f"site3-{self.uid}"

    @property
    def d1(self) -> str:
        return f"朝阳区-{self.uid}"

    @property
    def d2(self) -> str:
        return f"Xicheng-{self.uid}"

    def cam(self, name: str) -> str:
        return f"cam-{name}-{self.uid}"

    def det(self, name: str) -> str:
        return f"{name}:{self.uid}"


async def insert_alert(
    pool: AsyncConnectionPool[Any],
    alert_id: str,
    *,
    enterprise: str,
    site: str,
    created_at: datetime,
    code: str = "KITCHEN_NO_MASK",
    source: tuple[str, str],
    detector: str,
    status: str = "open",
    disposition: str | None = None,
    leniency: str = "not_eligible",
    penalty_case: bool = False,
    closed_at: datetime | None = None,
) -> None:
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO alerts (alert_id, code, enterprise_id, site_id, source_kind, source_id, status,"
            " severity, tier, summary, detector, window_start, first_seen, last_seen, deadline,"
            " created_at, updated_at, leniency, penalty_case, disposition, closed_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, 'minor', 2, 'stats test', %s, %s, %s, %s, %s, %s, %s,"
            " %s, %s, %s, %s)",
            (
                alert_id,
                code,
                enterprise,
                site,
                source[0],
                source[1],
                status,
                detector,
                created_at - timedelta(minutes=1),
                created_at,
                created_at,
                created_at + timedelta(hours=24),
                created_at,
                closed_at or created_at,
                leniency,
                penalty_case,
                disposition,
                closed_at,
            ),
        )


async def seed_scenario(pool: AsyncConnectionPool[Any], uid: str) -> Scenario:
    """Two enterprises, three sites (one without a district), eleven alerts: nine in
    [2023-01-01, 2023-04-01) and one just outside each end.

    | n  | site| created UTC  | code   | source | detector  | status    | disposition | leniency | pen | h  |
    |  1 | s1  | 01-10 10:00  | MASK   | cam a  | ppe       | closed    | warning     | first    |     | 10 |
    |  2 | s1  | 01-20 08:00  | MASK   | cam b  | ppe       | closed    | penalty     | repeat   | yes | 30 |
    |  3 | s2  | 01-31 23:30  | RODENT | cam a  | rodent    | dismissed | false_alarm |          |     |    |
    |  4 | s2  | 02-01 00:00  | RODENT | dev d  | telemetry | closed    | corrected   |          |     | 5  |
    |  5 | s1  | 02-14 09:00  | MASK   | cam b  | ppe       | open      |             | repeat   | yes |    |
    |  6 | s1  | 02-15 09:00  | RODENT | cam a  | rodent    | dismissed | false_alarm | repeat   | yes |    |
    |  7 | s2  | 03-03 12:00  | MASK   | cam c  | ppe       | rect.sub. |             | first    |     |    |
    |  8 | s3  | 01-05 06:00  | MASK   | cam c  | ppe       | closed    | warning     | first    |     | 2  |
    |  9 | s3  | 03-10 07:00  | RODENT | dev d  | telemetry | dismissed | false_alarm |          |     |    |
    | 10 | s1  | 2022-12-31 23:59:59, before since: cam a, rodent, dismissed             |
    | 11 | s1  | 04-01 00:00, at until (excluded): cam b, ppe, closed, corrected          |
    s1 (district d1) and s2 (no district) belong to e1, s3 (district d2) to e2. Leniency blank:
    not_eligible. h: hours from created to closed, for the rectified.
    """
    sc = Scenario(uid)
    async with pool.connection() as conn:
        for ent in (sc.e1, sc.e2):
            await conn.execute("INSERT INTO enterprises (enterprise_id, name) VALUES (%s, %s)", (ent, ent))
        for site, ent, district in ((sc.s1, sc.e1, sc.d1), (sc.s2, sc.e1, None), (sc.s3, sc.e2, sc.d2)):
            await conn.execute(
                "INSERT INTO sites (site_id, enterprise_id, name, district) VALUES (%s, %s, %s, %s)",
                (site, ent, site, district),
            )
    cam_a, cam_b, cam_c = (("camera", sc.cam(n)) for n in "abc")
    dev_d = ("device", f"dev-d-{uid}")
    ppe, rodent, telemetry = sc.det("ppe"), sc.det("rodent"), sc.det("telemetry")
    mask, rat = "KITCHEN_NO_MASK", "KITCHEN_RODENT"
    rows: list[dict[str, Any]] = [
        dict(enterprise=sc.e1, site=sc.s1, created_at=at(1, 10, 10), code=mask, source=cam_a, detector=ppe,
             status="closed", disposition="warning", leniency="first_offence", closed_at=at(1, 10, 20)),
        dict(enterprise=sc.e1, site=sc.s1, created_at=at(1, 20, 8), code=mask, source=cam_b, detector=ppe,
             status="closed", disposition="penalty", leniency="repeat", penalty_case=True,
             closed_at=at(1, 21, 14)),
        dict(enterprise=sc.e1, site=sc.s2, created_at=at(1, 31, 23, 30), code=rat, source=cam_a,
             detector=rodent, status="dismissed", disposition="false_alarm", closed_at=at(2, 1, 0, 30)),
        dict(enterprise=sc.e1, site=sc.s2, created_at=at(2, 1), code=rat, source=dev_d, detector=telemetry,
             status="closed", disposition="corrected", closed_at=at(2, 1, 5)),
        dict(enterprise=sc.e1, site=sc.s1, created_at=at(2, 14, 9), code=mask, source=cam_b, detector=ppe,
             leniency="repeat", penalty_case=True),
        dict(enterprise=sc.e1, site=sc.s1, created_at=at(2, 15, 9), code=rat, source=cam_a, detector=rodent,
             status="dismissed", disposition="false_alarm", leniency="repeat", penalty_case=True,
             closed_at=at(2, 15, 11)),
        dict(enterprise=sc.e1, site=sc.s2, created_at=at(3, 3, 12), code=mask, source=cam_c, detector=ppe,
             status="rectification_submitted", leniency="first_offence"),
        dict(enterprise=sc.e2, site=sc.s3, created_at=at(1, 5, 6), code=mask, source=cam_c, detector=ppe,
             status="closed", disposition="warning", leniency="first_offence", closed_at=at(1, 5, 8)),
        dict(enterprise=sc.e2, site=sc.s3, created_at=at(3, 10, 7), code=rat, source=dev_d,
             detector=telemetry, status="dismissed", disposition="false_alarm", closed_at=at(3, 10, 10)),
        dict(enterprise=sc.e1, site=sc.s1, created_at=at(12, 31, 23, 59, 59, year=2022), code=rat,
             source=cam_a, detector=rodent, status="dismissed", disposition="false_alarm",
             closed_at=at(1, 1, 1)),
        dict(enterprise=sc.e1, site=sc.s1, created_at=at(4, 1), code=mask, source=cam_b, detector=ppe,
             status="closed", disposition="corrected", closed_at=at(4, 1, 3)),
    ]  # fmt: skip
    for n, row in enumerate(rows, start=1):
        await insert_alert(pool, f"st-{uid}-{n:02d}", **row)
    return sc


def row(
    key: str,
    *,
    alerts: int,
    violations: int,
    warnings: int = 0,
    penalty_cases: int = 0,
    rectified: int = 0,
    mean_hours: float | None = None,
    repeat: int = 0,
    false_alarms: int = 0,
) -> StatsRow:
    """The expected row; the rates follow from the counts, so each test states only the counts."""
    return StatsRow(
        key=key,
        alerts=alerts,
        violations=violations,
        warnings=warnings,
        penalty_cases=penalty_cases,
        rectified=rectified,
        rectification_rate=rectified / violations if violations else None,
        mean_hours_to_rectify=mean_hours,
        repeat_offences=repeat,
        repeat_offence_rate=repeat / violations if violations else None,
        false_alarms=false_alarms,
        false_alarm_rate=false_alarms / alerts,
    )


def same(actual: list[StatsRow], expected: list[StatsRow]) -> None:
    """Equal, with the mean hours compared approximately (it comes from a numeric average)."""
    assert [r.key for r in actual] == [r.key for r in expected]
    for a, e in zip(actual, expected, strict=True):
        mean = e.mean_hours_to_rectify
        assert asdict(a) == asdict(e) | {
            "mean_hours_to_rectify": None if mean is None else pytest.approx(mean)
        }


async def stats(pool: AsyncConnectionPool[Any], **kwargs: Any) -> list[StatsRow]:
    kwargs = {"since": SINCE, "until": UNTIL, **kwargs}
    async with pool.connection() as conn:
        return await supervision_stats(conn, **kwargs)


async def test_by_month(pool: AsyncConnectionPool[Any], uid: str) -> None:
    sc = await seed_scenario(pool, uid)
    same(
        await stats(pool, group_by="period", period="month", enterprise_id=sc.e1),
        [
            row("2023-01-01", alerts=3, violations=2, warnings=1, penalty_cases=1, rectified=2,
                mean_hours=20.0, repeat=1, false_alarms=1),
            # 6 is a dismissed "repeat" with a penalty flag: a false alarm is never an offence.
            row("2023-02-01", alerts=3, violations=2, penalty_cases=1, rectified=1, mean_hours=5.0,
                repeat=1, false_alarms=1),
            row("2023-03-01", alerts=1, violations=1),
        ],
    )  # fmt: skip
    # month is the default period
    assert await stats(pool, group_by="period", enterprise_id=sc.e1) == await stats(
        pool, group_by="period", period="month", enterprise_id=sc.e1
    )
    [march] = await stats(pool, group_by="period", enterprise_id=sc.e1, since=at(3, 1))
    assert march.rectification_rate == 0.0 and march.mean_hours_to_rectify is None
    assert march.repeat_offence_rate == 0.0 and march.false_alarm_rate == 0.0


async def test_by_day_is_utc_whatever_the_session_zone(pool: AsyncConnectionPool[Any], uid: str) -> None:
    sc = await seed_scenario(pool, uid)
    expected = [
        row("2023-01-31", alerts=1, violations=0, false_alarms=1),  # 23:30 UTC is 07:30 Feb 1 in +08
        row("2023-02-01", alerts=1, violations=1, rectified=1, mean_hours=5.0),
    ]
    window: dict[str, Any] = {"since": at(1, 31), "until": at(2, 2)}
    same(await stats(pool, group_by="period", period="day", enterprise_id=sc.e1, **window), expected)
    async with pool.connection() as conn, conn.transaction():
        await conn.execute("SET LOCAL TIME ZONE 'Asia/Shanghai'")
        rows = await supervision_stats(conn, group_by="period", period="day", enterprise_id=sc.e1, **window)
    same(rows, expected)
    # since is inclusive, until exclusive: 4 was created at exactly 02-01 00:00.
    same(await stats(pool, group_by="period", period="day", enterprise_id=sc.e1, since=at(2, 1),
                     until=at(2, 2)), expected[1:])  # fmt: skip
    same(await stats(pool, group_by="period", period="day", enterprise_id=sc.e1, since=at(1, 31),
                     until=at(2, 1)), expected[:1])  # fmt: skip


async def test_by_week_starts_on_monday(pool: AsyncConnectionPool[Any], uid: str) -> None:
    sc = await seed_scenario(pool, uid)
    rows = await stats(pool, group_by="period", period="week", enterprise_id=sc.e1)
    assert [(r.key, r.alerts) for r in rows] == [
        ("2023-01-09", 1),  # Tue 01-10
        ("2023-01-16", 1),  # Fri 01-20
        ("2023-01-30", 2),  # Tue 01-31 and Wed 02-01
        ("2023-02-13", 2),  # Tue 02-14 and Wed 02-15
        ("2023-02-27", 1),  # Fri 03-03
    ]
    assert all(datetime.fromisoformat(r.key).weekday() == 0 for r in rows)


async def test_by_enterprise(pool: AsyncConnectionPool[Any], uid: str) -> None:
    sc = await seed_scenario(pool, uid)
    mine = [r for r in await stats(pool, group_by="enterprise") if uid in r.key]
    same(
        mine,
        [
            # 10 and 11, just outside the range, are not counted.
            row(sc.e1, alerts=7, violations=5, warnings=1, penalty_cases=2, rectified=3, mean_hours=15.0,
                repeat=2, false_alarms=2),
            row(sc.e2, alerts=2, violations=1, warnings=1, rectified=1, mean_hours=2.0, false_alarms=1),
        ],
    )  # fmt: skip
    same(await stats(pool, group_by="enterprise", enterprise_id=sc.e2), mine[1:])


async def test_by_district(pool: AsyncConnectionPool[Any], uid: str) -> None:
    sc = await seed_scenario(pool, uid)
    d1 = row(sc.d1, alerts=4, violations=3, warnings=1, penalty_cases=2, rectified=2, mean_hours=20.0,
             repeat=2, false_alarms=1)  # fmt: skip
    unassigned = row("unassigned", alerts=3, violations=2, rectified=1, mean_hours=5.0, false_alarms=1)
    d2 = row(sc.d2, alerts=2, violations=1, warnings=1, rectified=1, mean_hours=2.0, false_alarms=1)
    # A site without a district is 'unassigned'; ordered by key.
    same(await stats(pool, group_by="district", enterprise_id=sc.e1), [unassigned, d1])
    # Across enterprises (other tests' districts filtered out by their names).
    everyone = await stats(pool, group_by="district")
    same([r for r in everyone if r.key in (sc.d1, sc.d2)], [d2, d1])
    # The district filter takes the reported keys, 'unassigned' included.
    same(await stats(pool, group_by="district", district=sc.d1), [d1])
    same(await stats(pool, group_by="district", district="unassigned", enterprise_id=sc.e1), [unassigned])
    same(
        await stats(pool, group_by="enterprise", district=sc.d1),
        [row(sc.e1, alerts=4, violations=3, warnings=1, penalty_cases=2, rectified=2, mean_hours=20.0,
             repeat=2, false_alarms=1)],
    )  # fmt: skip
    assert await stats(pool, group_by="district", district=f"nowhere-{uid}") == []


async def test_by_code_and_filters(pool: AsyncConnectionPool[Any], uid: str) -> None:
    sc = await seed_scenario(pool, uid)
    same(
        await stats(pool, group_by="code", enterprise_id=sc.e1),
        [
            row("KITCHEN_NO_MASK", alerts=4, violations=4, warnings=1, penalty_cases=2, rectified=2,
                mean_hours=20.0, repeat=2),
            row("KITCHEN_RODENT", alerts=3, violations=1, rectified=1, mean_hours=5.0, false_alarms=2),
        ],
    )  # fmt: skip
    # Only false alarms: no violations, so the rates over violations and the mean are None, not 0.
    [only_false] = await stats(pool, group_by="code", enterprise_id=sc.e2, code="KITCHEN_RODENT")
    assert only_false == row("KITCHEN_RODENT", alerts=1, violations=0, false_alarms=1)
    assert only_false.rectification_rate is None and only_false.repeat_offence_rate is None
    assert only_false.mean_hours_to_rectify is None and only_false.false_alarm_rate == 1.0
    # Filters combine.
    same(
        await stats(
            pool, group_by="period", enterprise_id=sc.e1, district="unassigned", code="KITCHEN_RODENT"
        ),
        [
            row("2023-01-01", alerts=1, violations=0, false_alarms=1),
            row("2023-02-01", alerts=1, violations=1, rectified=1, mean_hours=5.0),
        ],
    )
    assert await stats(pool, group_by="code", enterprise_id=f"none-{uid}") == []


async def test_closed_without_disposition_counts_as_rectified(
    pool: AsyncConnectionPool[Any], uid: str
) -> None:
    sc = Scenario(uid)
    async with pool.connection() as conn:
        await conn.execute("INSERT INTO enterprises (enterprise_id, name) VALUES (%s, 'x')", (sc.e1,))
        await conn.execute(
            "INSERT INTO sites (site_id, enterprise_id, name) VALUES (%s, %s, 'x')", (sc.s1, sc.e1)
        )
    common: dict[str, Any] = {"enterprise": sc.e1, "site": sc.s1, "detector": sc.det("ppe")}
    # An alert closed before dispositions existed, with and without a closed_at.
    await insert_alert(pool, f"st-{uid}-1", created_at=at(1, 2), source=("camera", sc.cam("a")),
                       status="closed", closed_at=at(1, 2, 3), **common)  # fmt: skip
    await insert_alert(pool, f"st-{uid}-2", created_at=at(1, 3), source=("camera", sc.cam("b")),
                       status="closed", **common)  # fmt: skip
    same(
        await stats(pool, group_by="enterprise", enterprise_id=sc.e1),
        [row(sc.e1, alerts=2, violations=2, rectified=2, mean_hours=3.0)],  # the mean needs a closed_at
    )


async def test_refuses_bad_arguments(pool: AsyncConnectionPool[Any]) -> None:
    async with pool.connection() as conn:
        with pytest.raises(ValueError, match="before"):
            await supervision_stats(conn, group_by="code", since=UNTIL, until=UNTIL)
        with pytest.raises(ValueError, match="group_by"):
            await supervision_stats(conn, group_by="site", since=SINCE, until=UNTIL)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="period"):
            await supervision_stats(
                conn,
                group_by="period",
                period="year",  # type: ignore[arg-type]
                since=SINCE,
                until=UNTIL,
            )
        with pytest.raises(ValueError, match="by"):
            await false_alarm_stats(conn, by="site", since=SINCE, until=UNTIL)  # type: ignore[arg-type]


async def test_naive_times_are_utc(pool: AsyncConnectionPool[Any], uid: str) -> None:
    sc = await seed_scenario(pool, uid)
    naive = await stats(pool, group_by="code", enterprise_id=sc.e1, since=datetime(2023, 2, 1),
                        until=datetime(2023, 2, 2))  # fmt: skip
    assert [(r.key, r.alerts) for r in naive] == [("KITCHEN_RODENT", 1)]


async def fa(pool: AsyncConnectionPool[Any], **kwargs: Any) -> list[FalseAlarmRow]:
    kwargs = {"since": SINCE, "until": UNTIL, **kwargs}
    async with pool.connection() as conn:
        return await false_alarm_stats(conn, **kwargs)


async def test_false_alarms_per_source(pool: AsyncConnectionPool[Any], uid: str) -> None:
    sc = await seed_scenario(pool, uid)
    cam_a, cam_b, cam_c = (f"camera:{sc.cam(n)}" for n in "abc")
    dev_d = f"device:dev-d-{uid}"
    # Most false alarms first, then most alerts, then key. 10 (before since) is not counted.
    assert [r for r in await fa(pool, by="source") if uid in r.key] == [
        FalseAlarmRow(cam_a, 3, 2, 2 / 3),
        FalseAlarmRow(dev_d, 2, 1, 0.5),
        FalseAlarmRow(cam_b, 2, 0, 0.0),
        FalseAlarmRow(cam_c, 2, 0, 0.0),
    ]
    assert await fa(pool, by="source", enterprise_id=sc.e1) == [
        FalseAlarmRow(cam_a, 3, 2, 2 / 3),
        FalseAlarmRow(cam_b, 2, 0, 0.0),
        FalseAlarmRow(cam_c, 1, 0, 0.0),
        FalseAlarmRow(dev_d, 1, 0, 0.0),
    ]
    assert await fa(pool, by="source", enterprise_id=sc.e1, limit=1) == [FalseAlarmRow(cam_a, 3, 2, 2 / 3)]
    assert await fa(pool, by="source", enterprise_id=sc.e1, since=at(3, 1)) == [
        FalseAlarmRow(cam_c, 1, 0, 0.0)
    ]


async def test_false_alarms_per_detector(pool: AsyncConnectionPool[Any], uid: str) -> None:
    sc = await seed_scenario(pool, uid)
    assert [r for r in await fa(pool, by="detector") if uid in r.key] == [
        FalseAlarmRow(sc.det("rodent"), 2, 2, 1.0),
        FalseAlarmRow(sc.det("telemetry"), 2, 1, 0.5),
        FalseAlarmRow(sc.det("ppe"), 5, 0, 0.0),
    ]
    assert await fa(pool, by="detector", enterprise_id=sc.e2) == [
        FalseAlarmRow(sc.det("telemetry"), 1, 1, 1.0),
        FalseAlarmRow(sc.det("ppe"), 1, 0, 0.0),
    ]
