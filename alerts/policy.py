"""Policy decisions taken when an alert opens or moves: first-offence leniency and who handles it.

- **Leniency**: an alert whose enterprise had a closed alert of the same code opened within the
  look-back (two years by default) is a *repeat*: flagged for a penalty case and escalated at once.
  Otherwise, a code on the catalogue's first-offence-no-penalty list is a *first offence*: corrected
  by the deadline it ends in a warning. Dismissed alerts (false alarms) are never offences.
  Alerts still open at the same time (two cameras seeing one episode) are not repeats of each other.
- **Assignment**: every site has an A (primary handler), B (backup) and C (specialist). New alerts
  go to A, or B when A is away; difficult and escalated ones to C. Whoever is away is passed over.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from psycopg import AsyncConnection

from vigil.catalogue import violation_type
from vigil.settings import Settings
from vigil.summaries import DEFAULT_TIMEZONE

Leniency = Literal["first_offence", "repeat", "not_eligible"]
Slot = Literal["A", "B", "C"]

# Who takes an alert, in order of preference, by what the alert needs.
_ROUTING: dict[Literal["new", "specialist"], tuple[Slot, ...]] = {
    "new": ("A", "B", "C"),
    "specialist": ("C", "A", "B"),
}


@dataclass(frozen=True, slots=True)
class Policy:
    lookback: timedelta
    follow_up_after: timedelta
    public_url: str
    timezone: str = DEFAULT_TIMEZONE  # of the times in notice texts (VIGIL_TIMEZONE)

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls(
            lookback=timedelta(days=settings.leniency_lookback_days),
            follow_up_after=timedelta(days=settings.follow_up_after_days),
            public_url=settings.public_url,
            timezone=settings.timezone,
        )


DEFAULT_POLICY = Policy(lookback=timedelta(days=730), follow_up_after=timedelta(days=30), public_url="")


@dataclass(frozen=True, slots=True)
class LeniencyDecision:
    leniency: Leniency
    prior_alert_id: str | None
    prior_closed_at: datetime | None

    @property
    def penalty_case(self) -> bool:
        return self.leniency == "repeat"


async def decide_leniency(
    conn: AsyncConnection[Any], enterprise_id: str, code: str, seen: datetime, policy: Policy
) -> LeniencyDecision:
    cur = await conn.execute(
        "SELECT alert_id, closed_at FROM alerts"
        " WHERE enterprise_id = %s AND code = %s AND status = 'closed'"
        " AND first_seen >= %s AND first_seen < %s"
        " ORDER BY first_seen DESC LIMIT 1",
        (enterprise_id, code, seen - policy.lookback, seen),
    )
    row = await cur.fetchone()
    if row is not None:
        return LeniencyDecision("repeat", row[0], row[1])
    eligible = violation_type(code).first_offence_warning
    return LeniencyDecision("first_offence" if eligible else "not_eligible", None, None)


async def pick_handler(
    conn: AsyncConnection[Any], site_id: str, need: Literal["new", "specialist"]
) -> tuple[str, Slot] | tuple[None, None]:
    """The staff member (and slot) who should take an alert of `site_id`; (None, None) when the site
    has no handler present, which leaves the alert in the unassigned queue."""
    cur = await conn.execute(
        "SELECT h.slot, h.staff_id FROM site_handlers h JOIN staff s USING (staff_id)"
        " WHERE h.site_id = %s AND NOT s.away",
        (site_id,),
    )
    present: dict[str, str] = {slot: staff for slot, staff in await cur.fetchall()}
    for slot in _ROUTING[need]:
        if slot in present:
            return present[slot], slot
    return None, None
