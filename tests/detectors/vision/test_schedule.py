"""Whether a site is closed at a frame's capture time: day hours, hours over midnight, no hours,
and the bureau's zone deciding the local time."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from detectors.vision.schedule import is_closed
from vigil.errors import InvalidRequest
from vigil.registry import SiteHours, check_hours

SHANGHAI = ZoneInfo("Asia/Shanghai")


def at(hhmm: str, zone: ZoneInfo = SHANGHAI) -> int:
    hours, minutes = map(int, hhmm.split(":"))
    return int(datetime(2025, 3, 4, hours, minutes, tzinfo=zone).timestamp() * 1000)


@pytest.mark.parametrize(
    ("opens", "closes", "now", "closed"),
    [
        ("08:00", "22:00", "12:00", False),
        ("08:00", "22:00", "08:00", False),  # opening time inclusive
        ("08:00", "22:00", "22:00", True),  # closing time exclusive
        ("08:00", "22:00", "03:00", True),
        ("10:00", "02:00", "01:30", False),  # open over midnight
        ("10:00", "02:00", "23:00", False),
        ("10:00", "02:00", "05:00", True),
    ],
)
def test_closed_outside_the_hours(opens: str, closes: str, now: str, closed: bool) -> None:
    assert is_closed(SiteHours("s", opens, closes), at(now), SHANGHAI) is closed


def test_a_site_without_hours_is_never_closed() -> None:
    assert not is_closed(None, at("03:00"), SHANGHAI)
    assert not is_closed(SiteHours("s", None, None), at("03:00"), SHANGHAI)


def test_the_bureau_zone_decides_the_local_time() -> None:
    hours = SiteHours("s", "08:00", "22:00")
    noon_in_shanghai = at("12:00")  # 04:00 UTC
    assert not is_closed(hours, noon_in_shanghai, SHANGHAI)
    assert is_closed(hours, noon_in_shanghai, ZoneInfo("UTC"))


@pytest.mark.parametrize(
    ("opens", "closes", "message"),
    [
        ("08:00", None, "both"),
        ("8:00", "22:00", "HH:MM"),
        ("24:00", "22:00", "HH:MM"),
        ("08:00", "08:00", "equal"),
    ],
)
def test_bad_hours_are_refused(opens: str | None, closes: str | None, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        check_hours(opens, closes)
