"""The fault suite: a scripted site streams readings through the real services while one fault at a
time is injected; afterwards every alert the script calls for must exist exactly once, its notice
must have been delivered, and every reading must be stored.

Each fault gets its own "wave": a fresh enterprise with freezers, some of which warm past −18 °C
for longer than their `duration_s` while the fault is under way, so violations are in flight when
it strikes. The expected alerts are therefore known in advance: one COLD_CHAIN_FREEZER_WARM per
failing freezer of the wave, nothing for the others.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import orjson

from shell.faults import netns
from shell.faults.harness import Cluster
from shell.faults.report import FaultResult, format_table
from vigil import mqtt
from vigil.kafka import now_ms
from vigil.progress import Progress
from vigil.registry import register_device

log = logging.getLogger(__name__)

CODE = "COLD_CHAIN_FREEZER_WARM"
# The freezer rule's `for_s` for the suite's devices: short, so an excursion completes within a
# fault, long enough (several readings) that it is a real episode and not a single sample.
DURATION_S = 3.0
# One reading per device this often: a busy site without swamping a 2-core CI machine.
PERIOD_S = 0.5
# Cold readings before the fault: the devices are known to ingest (its registry cache) and the
# first excursions start before the fault does.
WARMUP_S = DURATION_S + 1.0
# Readings go on this long after the fault ends and after the last excursion is due.
TAIL_S = 2.0
# After everything is present, wait this long for a duplicate that may still be on its way.
SETTLE_S = 2.0
# Give up on catching up after this long (the row then reports the loss).
RECOVERY_LIMIT_S = 120.0
# The registries hear of a new device through the devices table's NOTIFY (migration 0008), within
# milliseconds; a service whose listening connection is being re-made (after a fault) only learns
# of it on a miss, at most once a second. A real device is registered well before it is
# installed; the suite waits this long so each fault is judged on its own effects.
REGISTERED_WAIT_S = 1.5
# Silence between waves is not an outage: the devices' heartbeat is set far beyond a suite run.
HEARTBEAT_S = 86_400

# Camera ingest runs in CI too (the burst pushes frames through it: its shedding is counted); the
# vision detector's model costs more CPU than a CI run can spare, so it is in the full suite only.
QUICK_SERVICES = ("alerts", "notifier", "detector-telemetry", "telemetry-store", "ingest", "camera-ingest")
FULL_SERVICES = (*QUICK_SERVICES, "detector-vision")
# The network partition's second "host": the edge of the pipeline (MQTT in, rule out), whose cut
# leaves the site publishing into the broker and the alerts side waiting on Kafka.
PARTITIONED = ("ingest", "detector-telemetry")
PARTITION = "network partition"

Inject = Callable[[Cluster, float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Fault:
    name: str
    inject: Inject  # returns when the fault is over (the service restarted, the link restored)
    duration_s: float


def kill9(service: str) -> Inject:
    async def inject(cluster: Cluster, down_s: float) -> None:
        cluster.services[service].kill9()
        await asyncio.sleep(down_s)
        cluster.services[service].spawn()  # fault end: readiness is part of the recovery time

    return inject


async def database_outage(cluster: Cluster, duration_s: float) -> None:
    assert cluster.db_proxy is not None
    cluster.db_proxy.cut()
    await asyncio.sleep(duration_s)
    cluster.db_proxy.restore()


async def kafka_unreachable(cluster: Cluster, duration_s: float) -> None:
    assert cluster.kafka_proxy is not None
    cluster.kafka_proxy.cut()
    await asyncio.sleep(duration_s)
    cluster.kafka_proxy.restore()


async def mqtt_restart(cluster: Cluster, duration_s: float) -> None:
    await cluster.stop_mqtt()
    await asyncio.sleep(duration_s)
    await cluster.start_mqtt()


async def kafka_restart(cluster: Cluster, duration_s: float) -> None:
    # The broker process dies (SIGKILL) and comes back on the same port and the same S3 storage:
    # what it had acknowledged must still be there, and every client must find its way back.
    await cluster.kill_kafka()
    await asyncio.sleep(duration_s)
    await cluster.start_kafka()


async def network_partition(cluster: Cluster, duration_s: float) -> None:
    # The partitioned services' link goes down: their packets vanish (no reset, no refusal), so
    # they learn of it only from their own timeouts, and connections may outlive a short cut.
    assert cluster.partition is not None
    await asyncio.to_thread(cluster.partition.cut)
    try:
        await asyncio.sleep(duration_s)
    finally:  # cancelled or not, the faults after this one must not run on a cut link
        await asyncio.to_thread(cluster.partition.restore)


def fault_list(services: Sequence[str], *, quick: bool) -> list[Fault]:
    # Short outages in CI (each still spans several readings and excursions), longer in the bench.
    kill_down_s, outage_s = (1.0, 5.0) if quick else (3.0, 15.0)
    killed = ("detector-telemetry", "alerts") if quick else services
    return [
        *(Fault(f"kill -9 {name}", kill9(name), kill_down_s) for name in killed),
        Fault("database outage", database_outage, outage_s),
        Fault("MQTT broker restart", mqtt_restart, outage_s),
        Fault("Kafka unreachable", kafka_unreachable, outage_s),
        Fault("Kafka broker restart", kafka_restart, outage_s),
        Fault(PARTITION, network_partition, outage_s),
    ]


@dataclass
class Wave:
    """One fault's devices, and what the site sent for them."""

    enterprise: str
    failing: list[str]
    normal: list[str]
    warm_at: dict[str, float]  # monotonic time each failing freezer turns warm
    sent: int = 0
    mids: list[int] = field(default_factory=list)  # MQTT message ids, to match the broker's PUBACKs


class Site:
    """The simulated site: one MQTT connection (a site gateway) with a persistent session, so
    readings published while the broker is away are queued by the client and sent on reconnect,
    as a device with local buffering does."""

    def __init__(self, cluster: Cluster, run_id: str) -> None:
        self._cluster = cluster
        self.run_id = run_id
        self._client = mqtt.mqtt_client(cluster.mqtt_url, f"vigil-faults-site-{run_id}", clean_session=False)
        # Queue without limit while disconnected: the suite counts every reading it sends.
        self._client.max_queued_messages_set(0)
        # PUBACKs by message id (paho's own flag refuses to report on a message that was queued
        # while disconnected, although it is sent and acknowledged after the reconnect).
        self._acked: set[int] = set()
        self._client.on_publish = lambda _c, _u, mid, _rc, _p: self._acked.add(mid)

    async def connect(self) -> None:
        await mqtt.connect(self._client, self._cluster.mqtt_url)

    def close(self) -> None:
        mqtt.disconnect(self._client)

    async def new_wave(self, index: int, *, failing: int, normal: int, fault_s: float) -> Wave:
        enterprise = f"faults-{self.run_id}-{index}"
        wave = Wave(
            enterprise,
            [f"fz-{self.run_id}-{index}-f{i}" for i in range(failing)],
            [f"fz-{self.run_id}-{index}-n{i}" for i in range(normal)],
            {},
        )
        assert self._cluster.pool is not None
        for device in wave.failing + wave.normal:
            await register_device(
                self._cluster.pool, enterprise_id=enterprise, site_id=f"{enterprise}-site",
                device_id=device, profile="freezer",
                attributes={"duration_s": DURATION_S, "heartbeat_s": HEARTBEAT_S},
            )  # fmt: skip
        await asyncio.sleep(REGISTERED_WAIT_S)
        # Each excursion becomes due (warm for DURATION_S) at its own moment inside the fault.
        fault_start = time.monotonic() + WARMUP_S
        for i, device in enumerate(wave.failing):
            due = fault_start + (i + 0.5) / failing * fault_s
            wave.warm_at[device] = due - DURATION_S
        return wave

    def publish(self, wave: Wave, device: str, temperature: float) -> None:
        payload = orjson.dumps({"ts": now_ms(), "metrics": {"temperature": temperature}})
        info = self._client.publish(f"vigil/v1/{wave.enterprise}/{device}/telemetry", payload, qos=1)
        self._acked.discard(info.mid)  # an id in use again after wrapping around
        wave.mids.append(info.mid)
        wave.sent += 1

    async def stream(self, wave: Wave, stop: asyncio.Event, *, factor: Callable[[], int] = lambda: 1) -> None:
        """A reading per device every PERIOD_S (divided by `factor()`: the overload burst)."""
        while not stop.is_set():
            now = time.monotonic()
            for device in wave.failing + wave.normal:
                warm = now >= wave.warm_at.get(device, float("inf"))
                self.publish(wave, device, -10.0 if warm else -21.0)
            await asyncio.sleep(PERIOD_S / factor())

    async def flushed(self, wave: Wave, timeout_s: float) -> bool:
        """Wait until the broker acknowledged every reading of the wave."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._acked.issuperset(wave.mids):
                return True
            await asyncio.sleep(0.1)
        return False


@dataclass(frozen=True, slots=True)
class Count:
    found: int
    duplicated: int
    unexpected: int
    notices: int
    notices_delivered: int
    notices_duplicated: int
    stored: int


async def count(cluster: Cluster, wave: Wave) -> Count:
    expected = set(wave.failing)
    rows = await cluster.query(
        "SELECT source_id, code, count(*), sum(occurrences) FROM alerts WHERE enterprise_id=%s GROUP BY 1, 2",
        wave.enterprise,
    )
    found = sum(1 for source, code, _, _ in rows if source in expected and code == CODE)
    # A duplicate is a second row for the same source and code, or a repeat counted on the one
    # row: either way the occurrences beyond the first.
    duplicated = sum(int(occ) - 1 for source, _, _, occ in rows if source in expected)
    unexpected = sum(int(n) for source, code, n, _ in rows if source not in expected or code != CODE)
    [(notices, delivered, alerts_notified)] = await cluster.query(
        "SELECT count(*), count(DISTINCT alert_id) FILTER (WHERE delivered_at IS NOT NULL),"
        " count(DISTINCT alert_id) FROM outbox WHERE enterprise_id=%s AND channel='mqtt_notice'",
        wave.enterprise,
    )
    [(stored,)] = await cluster.query(
        "SELECT count(*) FROM telemetry WHERE enterprise_id=%s AND metric='temperature'", wave.enterprise
    )
    return Count(
        found,
        duplicated,
        unexpected,
        int(notices),
        int(delivered),
        int(notices) - int(alerts_notified),
        int(stored),
    )


def _complete(c: Count, wave: Wave, store: bool) -> bool:
    return (
        c.found == len(wave.failing)
        and c.notices_delivered >= len(wave.failing)
        and (not store or c.stored >= wave.sent)
    )


async def run_fault(
    cluster: Cluster, site: Site, fault: Fault, index: int, *, failing: int, normal: int
) -> FaultResult:
    wave = await site.new_wave(index, failing=failing, normal=normal, fault_s=fault.duration_s)
    stop = asyncio.Event()
    streaming = asyncio.create_task(site.stream(wave, stop))
    try:
        await asyncio.sleep(WARMUP_S)
        sent_before = wave.sent
        log.info("fault %s: injecting for %.0fs", fault.name, fault.duration_s)
        await fault.inject(cluster, fault.duration_s)
        fault_end = time.monotonic()
        in_flight = wave.sent - sent_before
        last_due = max(wave.warm_at.values(), default=fault_end) + DURATION_S
        await asyncio.sleep(max(fault_end + TAIL_S, last_due + TAIL_S) - time.monotonic())
    finally:
        stop.set()
        await streaming
    store = "telemetry-store" in cluster.services
    recovery: float | None = None
    deadline = fault_end + RECOVERY_LIMIT_S
    while time.monotonic() < deadline:
        c = await count(cluster, wave)
        if _complete(c, wave, store):
            recovery = time.monotonic() - fault_end
            break
        await asyncio.sleep(0.2)
    for name, service in cluster.services.items():
        if not service.alive():
            raise RuntimeError(f"{name} is not running after {fault.name}; see {service.log_path}")
    await asyncio.sleep(SETTLE_S)
    c = await count(cluster, wave)
    if not await site.flushed(wave, 5.0):
        log.warning("fault %s: the site still has unacknowledged readings", fault.name)
    return FaultResult(
        fault=fault.name,
        in_flight=in_flight,
        alerts_expected=len(wave.failing),
        alerts_found=c.found,
        alerts_duplicated=c.duplicated,
        alerts_unexpected=c.unexpected,
        notices_expected=len(wave.failing),
        notices_delivered=c.notices_delivered,
        notices_duplicated=c.notices_duplicated,
        telemetry_sent=wave.sent,
        telemetry_stored=c.stored if store else wave.sent,
        recovery_s=recovery,
    )


async def run_faults_async(
    *,
    quick: bool,
    faults: Sequence[str] | None = None,
    overload: bool = True,
    services: Sequence[str] | None = None,
) -> list[FaultResult]:
    """Start the cluster, run each fault (those named in `faults`, default all) in turn, and the
    overload burst; returns a row per fault (a skipped one says why). `services`: a smaller
    cluster than the suite's."""
    services = services or (QUICK_SERVICES if quick else FULL_SERVICES)
    # More devices in the bench; in CI enough that each fault catches several excursions.
    failing, normal = (4, 2) if quick else (12, 6)
    chosen = [f for f in fault_list(services, quick=quick) if faults is None or f.name in faults]
    results: list[FaultResult] = []
    partition: netns.Partition | None = None
    if any(f.name == PARTITION for f in chosen):
        reason = await asyncio.to_thread(netns.unavailable)
        if reason is None:
            # In this thread: a Ctrl-C during set-up reaches `create`, which undoes what it made.
            partition = netns.Partition().create()
        else:
            log.warning("fault %s skipped: %s", PARTITION, reason)
            chosen = [f for f in chosen if f.name != PARTITION]
            results.append(FaultResult.skip(PARTITION, reason))
    try:
        if chosen or overload:
            await _run_cluster(services, chosen, results, partition, failing, normal, overload, quick)
    finally:
        if partition is not None:
            partition.remove()  # after the cluster: its services have left the namespace
    return results


async def _run_cluster(
    services: Sequence[str],
    chosen: Sequence[Fault],
    results: list[FaultResult],
    partition: netns.Partition | None,
    failing: int,
    normal: int,
    overload: bool,
    quick: bool,
) -> None:
    from shell.faults.overload import run_overload

    cluster = Cluster(services, partition=partition, isolated=PARTITIONED)
    try:
        await cluster.start()
        site = Site(cluster, uuid.uuid4().hex[:6])
        await site.connect()
        try:
            with Progress(len(chosen) + int(overload), "fault suite", unit="faults") as progress:
                for index, fault in enumerate(chosen):
                    results.append(
                        await run_fault(cluster, site, fault, index, failing=failing, normal=normal)
                    )
                    progress.advance()
                if overload:
                    results.append(await run_overload(cluster, site, len(chosen), quick=quick))
                    progress.advance()
        finally:
            site.close()
    finally:
        codes = await cluster.stop()
        unclean = {name: code for name, code in codes.items() if code not in (0, None)}
        if unclean:
            log.warning("services that did not stop cleanly: %s", unclean)


def run_faults(quick: bool) -> list[FaultResult]:
    """The whole suite (`quick`: the CI-sized one); for `vigil bench faults` and the bench report."""
    return asyncio.run(run_faults_async(quick=quick))


async def bench_faults(*, quick: bool, faults: Sequence[str] | None, overload: bool) -> int:
    """`vigil bench faults`: run the suite, print the table; exit 1 if any row lost or repeated."""
    known = [f.name for f in fault_list(FULL_SERVICES, quick=quick)]
    unknown = [name for name in faults or () if name not in known]
    if unknown:
        from vigil.errors import VigilError

        raise VigilError(f"unknown fault(s) {', '.join(unknown)}; known: {', '.join(known)}")
    started = time.monotonic()
    results = await run_faults_async(quick=quick, faults=faults, overload=overload)
    print(format_table(results))
    suite = "quick" if quick else "full"
    print(f"\n{len(results)} faults in {time.monotonic() - started:.0f} s ({suite} suite)")
    return 0 if all(r.ok for r in results) else 1
