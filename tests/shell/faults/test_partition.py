"""The network partition fault's namespace helper (shell/faults/netns.py): a process in the
namespace reaches the default namespace's end of the link, loses it while the link is cut (its
packets dropped: a timeout, not a refusal) and reaches it again once restored; the default
namespace keeps reaching that address throughout; nothing is left behind, on error too.

The fault itself runs on a small cluster of its own (25-33 s measured on two cores: the CI fault suite's
cluster cannot host it, since its services would have to start in a namespace that a machine
without root cannot make): ingest and the telemetry detector on the second "host", the link cut
for 5 s while excursions are due; nothing may be lost or repeated.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from shell.faults import netns, run_faults_async
from shell.faults.faults import PARTITION, PARTITIONED
from shell.faults.report import FaultResult, format_table

pytestmark = pytest.mark.timeout(60)
# The smallest cluster that still runs the whole path: MQTT in, rule, alert, notice, stored reading.
SMALL = (*PARTITIONED, "alerts", "notifier", "telemetry-store")

_CONNECT = "import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1)"


@pytest.fixture(scope="module")
def allowed() -> None:
    reason = netns.unavailable()
    if reason is not None:
        pytest.skip(f"network partition fault not testable here: {reason}")


@pytest.fixture
def listener() -> Iterator[tuple[netns.Partition, int]]:
    with netns.Partition() as part, socket.socket() as server:
        server.bind((part.host_addr, 0))
        server.listen(16)
        yield part, server.getsockname()[1]


def _from_namespace(part: netns.Partition, port: int) -> bool:
    """Connect from a process started in the namespace as the harness starts its services."""
    argv = [sys.executable, "-c", _CONNECT, part.host_addr, str(port)]
    return subprocess.run(argv, preexec_fn=part.enter, capture_output=True, timeout=10).returncode == 0


def test_the_link_is_cut_for_the_namespace_only_and_restored(
    allowed: None, listener: tuple[netns.Partition, int]
) -> None:
    part, port = listener
    assert part.exists() and part.name.startswith(netns.PREFIX)
    assert _from_namespace(part, port)
    part.cut()
    assert not _from_namespace(part, port), "the namespace still reaches the brokers' address"
    socket.create_connection((part.host_addr, port), timeout=1).close()  # the default namespace does
    part.restore()
    assert _from_namespace(part, port)


def test_namespace_and_link_are_removed_also_on_error(allowed: None) -> None:
    part = netns.Partition()
    with pytest.raises(RuntimeError, match="boom"), part:
        assert part.exists()
        raise RuntimeError("boom")
    assert not part.exists()
    part.remove()  # again: harmless


def test_a_skipped_fault_says_why_in_the_table() -> None:
    row = FaultResult.skip("network partition", "network namespaces need root")
    assert row.ok and row.recovery_s is None
    assert "skipped: network namespaces need root" in format_table([row])


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_a_network_partition_loses_and_repeats_nothing(allowed: None) -> None:
    [r] = asyncio.run(run_faults_async(quick=True, faults=(PARTITION,), overload=False, services=SMALL))
    print("\n" + format_table([r]))
    assert r.skipped is None
    assert r.in_flight > 0, "the site was streaming while the link was down"
    assert r.alerts_expected > 0 and r.alerts_found == r.alerts_expected, f"alerts lost: {r}"
    assert r.alerts_duplicated == 0 and r.alerts_unexpected == 0, f"alerts repeated or invented: {r}"
    assert r.notices_delivered == r.notices_expected and r.notices_duplicated == 0, f"notices: {r}"
    assert r.telemetry_sent > 0 and r.telemetry_lost == 0, f"readings lost: {r}"
    assert r.recovery_s is not None, f"not caught up: {r}"
    assert not [n for n in _namespaces() if n.startswith(f"{netns.PREFIX}{os.getpid()}-")]


def _namespaces() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def test_without_namespaces_the_fault_is_skipped_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netns.os, "geteuid", lambda: 1000)
    assert netns.unavailable() == "network namespaces need root"
    # Nothing else chosen: no cluster is started, the row says why.
    [r] = asyncio.run(run_faults_async(quick=True, faults=(PARTITION,), overload=False))
    assert r.fault == PARTITION and r.skipped == "network namespaces need root"
