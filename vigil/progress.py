"""A progress bar and rate for long work (benchmarks, replays, training), on stderr so that
reports on stdout stay clean. Quiet when stderr is not a terminal, except for the final line."""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Self

# Redraw at most this often: a terminal repaint per item would cost more than small items.
REDRAW_S = 0.1
BAR_WIDTH = 30


class Progress:
    def __init__(self, total: int, label: str, *, unit: str = "items") -> None:
        self.total, self.label, self.unit = max(total, 0), label, unit
        self.done = 0
        self._start = time.monotonic()
        self._drawn = 0.0
        self._tty = sys.stderr.isatty()

    def advance(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if self._tty and (now - self._drawn >= REDRAW_S or self.done >= self.total):
            self._drawn = now
            self._draw(now, end="")

    def _draw(self, now: float, end: str) -> None:
        fraction = self.done / self.total if self.total else 1.0  # open-ended: a full bar
        filled = round(BAR_WIDTH * min(fraction, 1.0))
        elapsed = max(now - self._start, 1e-9)
        bar = "█" * filled + "·" * (BAR_WIDTH - filled)
        # A total of 0 means open-ended work (timed runs): show the count without a fraction.
        count = f"{self.done}/{self.total}" if self.total else f"{self.done}"
        line = f"\r{self.label:<28} {bar} {count} {self.unit}  {self.done / elapsed:,.1f}/s"
        print(line, end=end, file=sys.stderr, flush=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._draw(time.monotonic(), end="\n")
