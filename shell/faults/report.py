"""What one fault did to the pipeline, and the table `vigil bench faults` prints."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Overload:
    """Memory and shedding during a burst at `factor` times the normal rate."""

    factor: int
    rss_before_mib: float  # all service processes together, before the burst
    rss_peak_mib: float  # the highest total sampled during the burst and the catch-up
    rss_after_mib: float  # once caught up
    frames_pushed: int  # accepted by camera ingest (HTTP 202)
    frames_analysed: int  # judged by camera ingest's gate (a late or repeated push is not)
    frames_sent: int  # passed the motion gate and reached Kafka
    frames_gated: int  # unchanged: not sent, by design
    frames_shed: int  # the send queue was full (or the frame too large): shed and counted


@dataclass(frozen=True, slots=True)
class FaultResult:
    fault: str
    in_flight: int  # readings the site sent while the fault lasted
    alerts_expected: int
    alerts_found: int  # expected alerts present at the end
    alerts_duplicated: int  # extra rows or repeats of an expected alert
    alerts_unexpected: int  # alerts the script does not call for
    notices_expected: int
    notices_delivered: int  # distinct alerts whose MQTT notice the broker acknowledged
    notices_duplicated: int  # MQTT notice rows beyond one per alert
    telemetry_sent: int
    telemetry_stored: int  # distinct readings in the telemetry table
    recovery_s: float | None  # fault end → everything present; None: not within the limit
    overload: Overload | None = None
    skipped: str | None = None  # why the fault could not be injected here (no row of numbers)

    @classmethod
    def skip(cls, fault: str, reason: str) -> FaultResult:
        return cls(fault, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, None, skipped=reason)

    @property
    def alerts_lost(self) -> int:
        return self.alerts_expected - self.alerts_found

    @property
    def telemetry_lost(self) -> int:
        return self.telemetry_sent - self.telemetry_stored

    @property
    def ok(self) -> bool:
        """Nothing lost or repeated (a skipped fault is not a failure: the table says why)."""
        if self.skipped is not None:
            return True
        return (
            self.alerts_lost == 0
            and self.alerts_duplicated == 0
            and self.alerts_unexpected == 0
            and self.notices_delivered == self.notices_expected
            and self.notices_duplicated == 0
            and self.telemetry_lost == 0
            and self.recovery_s is not None
        )


_HEAD = (
    "fault",
    "in flight",
    "alerts exp/found/dup",
    "notices exp/deliv",
    "telemetry lost",
    "recovery",
    "",
)


def format_table(results: Sequence[FaultResult]) -> str:
    rows = [_HEAD]
    for r in results:
        if r.skipped is not None:
            rows.append((r.fault, "-", "-", "-", "-", "-", f"skipped: {r.skipped}"))
            continue
        rows.append(
            (
                r.fault,
                str(r.in_flight),
                f"{r.alerts_expected}/{r.alerts_found}/{r.alerts_duplicated}"
                + (f" +{r.alerts_unexpected} unexpected" if r.alerts_unexpected else ""),
                f"{r.notices_expected}/{r.notices_delivered}"
                + (f" +{r.notices_duplicated} dup" if r.notices_duplicated else ""),
                f"{r.telemetry_lost} of {r.telemetry_sent}",
                "not caught up" if r.recovery_s is None else f"{r.recovery_s:.1f} s",
                "ok" if r.ok else "FAILED",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(_HEAD))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths).rstrip())
    for r in results:
        if r.overload is not None:
            o = r.overload
            lines.append(
                f"\n{r.fault}: {o.factor}x the normal rate; service RSS {o.rss_before_mib:.0f} MiB before, "
                f"{o.rss_peak_mib:.0f} MiB peak, {o.rss_after_mib:.0f} MiB after; frames pushed "
                f"{o.frames_pushed}, analysed {o.frames_analysed}: sent {o.frames_sent}, gated "
                f"{o.frames_gated}, shed {o.frames_shed} (counted); telemetry lost {r.telemetry_lost}"
            )
    return "\n".join(lines)
