"""Failed authentication, throttled per client address.

Every presented credential that is refused counts against the address it came from; past
`VIGIL_API_AUTH_FAILURES_PER_MINUTE` in a minute, that address is answered 429 with Retry-After
(before its credential is even looked at) until its minute is over. Each refusal is logged and
counted (`vigil_api_auth_failures`, `vigil_api_auth_throttled`). A request with no credential at all
is a plain 401 and does not count: it guesses nothing.

The table is bounded: at most MAX_ADDRESSES addresses are remembered, the least recently failing
forgotten first, so a flood from many addresses costs a fixed amount of memory (an attacker who
spreads over more addresses than that gets each a fresh allowance, which is the price of the
bound; a front proxy's per-address limits cover that case).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

# About 100 bytes an entry: 10,000 addresses is a megabyte.
MAX_ADDRESSES = 10_000
WINDOW_S = 60.0


class FailedAuthLimiter:
    """Failures per address in fixed one-minute windows. Not thread-safe: the event loop's only."""

    def __init__(
        self,
        per_window: int,
        *,
        max_addresses: int = MAX_ADDRESSES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._per_window = per_window
        self._max = max_addresses
        self._clock = clock
        # address -> (window start, failures in it); the order is least recently failed first.
        self._table: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._table)

    def retry_after(self, address: str) -> int | None:
        """Seconds until `address` may try again, or None when it is not throttled."""
        entry = self._table.get(address)
        if entry is None:
            return None
        start, failures = entry
        left = start + WINDOW_S - self._clock()
        if left <= 0:
            del self._table[address]
            return None
        return math.ceil(left) if failures >= self._per_window else None

    def failed(self, address: str) -> None:
        now = self._clock()
        start, failures = self._table.pop(address, (now, 0))
        if now - start >= WINDOW_S:
            start, failures = now, 0
        self._table[address] = (start, failures + 1)  # re-inserted: now the most recent
        while len(self._table) > self._max:
            self._table.popitem(last=False)
