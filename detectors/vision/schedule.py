"""Whether a site is open at a given moment: the gate of findings that only count while it is
closed (a person in the kitchen at 3 a.m., issue 23.3).

Pure: the frame's capture time decides, not the clock of the detector, so a backlog analysed late
is judged by when it was filmed.
"""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

from vigil.registry import SiteHours


def _time(hhmm: str) -> time:
    hours, minutes = hhmm.split(":")
    return time(int(hours), int(minutes))


def is_closed(hours: SiteHours | None, ts_ms: int, zone: ZoneInfo) -> bool:
    """True when the site has opening hours and `ts_ms` (epoch ms) falls outside them, in `zone`.

    A site without hours is never closed: nobody said when it is, and raising on every person seen
    would be noise. Opening time inclusive, closing time exclusive; closes before opens spans
    midnight (open 10:00 to 02:00 means closed from 02:00 to 10:00).
    """
    if hours is None or hours.opens is None or hours.closes is None:
        return False
    now = datetime.fromtimestamp(ts_ms / 1000, UTC).astimezone(zone).time()
    opens, closes = _time(hours.opens), _time(hours.closes)
    if opens < closes:
        return not opens <= now < closes
    return closes <= now < opens  # over midnight: closed between closing and opening
