"""Prometheus metrics, scraped over HTTP as Prometheus would: a real `vigil run` process on the real
brokers, and each service's counters moving by exactly the traffic the test sends."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import cv2
import httpx
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from alerts.notifier import Notifier
from alerts.service import AlertService
from detectors.vision.service import VisionDetector
from ingest.bridge import MqttKafkaBridge
from ingest.camera.service import CameraIngest
from shell.infra import free_port
from simulators.camera import KitchenScene, Script
from tests.helpers import publish
from vigil import metrics
from vigil.cameras import register_camera
from vigil.events import Telemetry, Violation, encode, violation_id
from vigil.frames import FrameMeta
from vigil.kafka import now_ms
from vigil.registry import register_device
from vigil.topics import FRAMES, TELEMETRY, VIOLATIONS

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def scrape(url: str) -> Samples:
    async with httpx.AsyncClient() as http:
        response = await http.get(url, timeout=5)
    response.raise_for_status()
    return parse(response.text)


async def until(check: Callable[[], Any], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.25)


@pytest.fixture
def exposition() -> Iterator[str]:
    """This test process's own exposition, on a free port, as `vigil run` serves it."""
    server = metrics.MetricsServer(0, "127.0.0.1").start()  # 0 here: any free port
    try:
        yield f"http://127.0.0.1:{server.port}/metrics"
    finally:
        server.stop()


def test_metrics_port_zero_means_off():
    assert metrics.serve(0) is None


# --- a real service process -------------------------------------------------------------------------


@pytest.fixture
def detector_process(settings) -> Iterator[str]:
    port = free_port()
    env = os.environ | {
        "VIGIL_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "VIGIL_DATABASE_URL": settings.database_url,
        "VIGIL_MQTT_URL": settings.mqtt_url,
        "VIGIL_METRICS_PORT": str(port),
        # No replay and no model: the counters then move by the test's messages alone, and sooner.
        "VIGIL_DETECTOR_REPLAY_WINDOW_S": "0",
        "VIGIL_EARLY_WARNING": "false",
    }
    process = subprocess.Popen([sys.executable, "-m", "shell.cli", "run", "detector-telemetry"], env=env)
    try:
        yield f"http://127.0.0.1:{port}/metrics"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def test_a_service_process_serves_its_metrics(settings, pool, uid, detector_process):
    url = detector_process
    samples: Samples = {}

    async def caught_up() -> bool:
        """Served, in the group, and every partition it has fetched read to its end."""
        nonlocal samples
        try:
            samples = await scrape(url)
        except httpx.TransportError:
            return False
        lags = [
            v
            for (name, labels), v in samples.items()
            if name == "vigil_kafka_consumer_lag" and ("topic", TELEMETRY) in labels
        ]
        return bool(lags) and not any(lags)

    await until(caught_up, "the detector process to serve metrics and catch up", timeout=120)
    assert value(samples, "vigil_build_info", version=__import__("vigil").__version__) == 1
    assert ("process_cpu_seconds_total", frozenset()) in samples, "process metrics come along"
    lag_labels = {dict(labels)["group"] for (name, labels) in samples if name == "vigil_kafka_consumer_lag"}
    assert lag_labels == {"vigil-detector-telemetry"}
    before = samples

    device, ent, site = f"chiller-{uid}", f"ent-{uid}", f"site-{uid}"
    await register_device(
        pool, enterprise_id=ent, site_id=site, device_id=device, profile="chiller",
        attributes={"max_temp_c": 5, "duration_s": 120},
    )  # fmt: skip
    # Warm for 3 minutes (raised), then back in range (cleared): two violations.
    readings = [(0, 4.0), (60, 6.0), (120, 6.5), (180, 7.0), (240, 3.0)]
    t0, received = now_ms() - 600_000, now_ms()
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        for seconds, temp in readings:
            t = Telemetry(ent, device, site, "chiller", t0 + seconds * 1000, {"temperature": temp}, received)
            await producer.send_and_wait(TELEMETRY, encode(t), key=device.encode())
        await producer.send_and_wait(TELEMETRY, b'{"v": 1, "type": "telemetry"}', key=device.encode())
    finally:
        await producer.stop()

    messages = "vigil_telemetry_messages_total"

    async def counted() -> bool:
        nonlocal samples
        samples = await scrape(url)
        return value(samples, messages, kind="invalid") > value(before, messages, kind="invalid")

    await until(counted, "the readings to be counted")
    await asyncio.sleep(1.0)  # anything counted twice would show by now
    samples = await scrape(url)
    assert value(samples, messages, kind="telemetry") - value(before, messages, kind="telemetry") == len(
        readings
    )
    assert value(samples, messages, kind="invalid") - value(before, messages, kind="invalid") == 1
    assert (
        value(samples, "vigil_detector_violations_total", detector="telemetry")
        - value(before, "vigil_detector_violations_total", detector="telemetry")
        == 2
    )
    rule_batches = "vigil_telemetry_rule_evaluation_seconds_count"
    assert value(samples, rule_batches) > value(before, rule_batches)
    rule_seconds = "vigil_telemetry_rule_evaluation_seconds_sum"
    assert value(samples, rule_seconds) > value(before, rule_seconds)


# --- each service's own counters, in this process -------------------------------------------------


@pytest.fixture
async def bridge(settings, pool, uid) -> AsyncIterator[MqttKafkaBridge]:
    await register_device(
        pool, enterprise_id=f"ent-{uid}", site_id=f"site-{uid}", device_id=f"freezer-{uid}", profile="freezer"
    )
    async with MqttKafkaBridge(settings, client_id=f"vigil-ingest-metrics-{uid}") as running:
        yield running


async def test_ingest_counts_forwarded_and_dead_lettered_messages(settings, uid, bridge, exposition):
    before = await scrape(exposition)
    good = f"vigil/v1/ent-{uid}/freezer-{uid}/telemetry"
    for i in range(3):
        publish(settings.mqtt_url, good, f'{{"ts": {now_ms()}, "metrics": {{"temperature": -{20 + i}}}}}')
    publish(settings.mqtt_url, f"vigil/v1/ent-{uid}/stranger-{uid}/telemetry", '{"metrics": {"t": 1}}')
    publish(settings.mqtt_url, good, "not json")

    async def settled() -> bool:
        s = bridge.stats
        return s.forwarded + sum(s.dead_lettered.values()) >= 5

    await until(settled, "ingest to handle the five messages")
    after = await scrape(exposition)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("vigil_ingest_messages_received_total") == 5
    assert delta("vigil_ingest_messages_forwarded_total") == 3
    assert delta("vigil_ingest_records_produced_total") == 3
    assert delta("vigil_ingest_messages_dead_lettered_total", reason="unknown_device") == 1
    dead = [
        value(after, name, **dict(labels)) - value(before, name, **dict(labels))
        for (name, labels) in after
        if name == "vigil_ingest_messages_dead_lettered_total"
    ]
    assert sum(dead) == 2


def _jpeg(scene: KitchenScene, t: float) -> bytes:
    ok, buf = cv2.imencode(".jpg", scene.render(t), [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    return buf.tobytes()


async def test_vision_counts_inferred_and_stale_frames_and_times_inference(settings, pool, uid, exposition):
    ent, site, camera = f"ent-{uid}", f"site-{uid}", f"cam-{uid}"
    await register_camera(pool, enterprise_id=ent, site_id=site, camera_id=camera, source="push")
    scene = KitchenScene(Script.parse([]))
    detector = VisionDetector(settings.model_copy(update={"vision_max_lag_s": 120.0}))
    detector.group_id = f"test-vision-metrics-{uid}"  # its own group: only this test's frames... and
    before = await scrape(exposition)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        async with detector:
            now = now_ms()
            # ... every earlier test's frames too (a new group reads from the start): so the deltas
            # are checked against the detector's own plain counters, and the stale ones by ours.
            plan = [(now + i, _jpeg(scene, 1 + i / 2)) for i in range(3)]
            plan += [(now - 600_000 + i, _jpeg(scene, 1)) for i in range(2)]  # ten minutes old
            for seq, (ts, frame) in enumerate(plan):
                meta = FrameMeta(camera, ent, site, ts, seq, "motion")
                await producer.send_and_wait(FRAMES, frame, key=camera.encode(), headers=meta.headers())

            async def done() -> bool:
                return detector.stats.analysed >= 3 and detector.stats.dropped_stale >= 2

            await until(done, "the frames to be analysed")
            await asyncio.sleep(0.5)
            after = await scrape(exposition)
            stats = detector.stats
    finally:
        await producer.stop()

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("vigil_vision_frames_total", outcome="inferred") == stats.analysed
    assert delta("vigil_vision_frames_total", outcome="stale") == stats.dropped_stale
    assert delta("vigil_vision_inference_seconds_count") == stats.batches >= 1
    assert delta("vigil_vision_inference_seconds_sum") > 0
    assert delta("vigil_vision_batch_frames_sum") == stats.analysed


async def test_camera_ingest_counts_passed_gated_and_sent_frames(settings, pool, uid, exposition):
    ent, site, camera = f"ent-{uid}", f"site-{uid}", f"edge-{uid}"
    await register_camera(pool, enterprise_id=ent, site_id=site, camera_id=camera, source="push")
    s = settings.model_copy(update={"ingest_http_port": 0})
    frame = _jpeg(KitchenScene(), 1.0)
    before = await scrape(exposition)
    async with CameraIngest(s) as ingest, httpx.AsyncClient(base_url=ingest.http_url) as http:
        headers = {
            "Authorization": f"Bearer {s.require_secret('camera_push_token')}",
            "Content-Type": "image/jpeg",
        }
        url = f"/v1/cameras/{camera}/frames"
        assert (await http.post(url, content=frame, headers=headers)).json()["sent"] is True
        assert (await http.post(url, content=frame, headers=headers)).json()["reason"] == "static"

        async def sent_and_online() -> bool:
            after = await scrape(exposition)
            return (
                value(after, "vigil_camera_ingest_frames_total", outcome="sent")
                > value(before, "vigil_camera_ingest_frames_total", outcome="sent")
                and value(after, "vigil_camera_ingest_cameras", state="online") >= 1
            )

        await until(sent_and_online, "Kafka to acknowledge the frame and the health check to run")
        after = await scrape(exposition)

    def delta(outcome: str) -> float:
        name = "vigil_camera_ingest_frames_total"
        return value(after, name, outcome=outcome) - value(before, name, outcome=outcome)

    assert (delta("passed"), delta("gated"), delta("sent"), delta("dropped")) == (1, 1, 1, 0)


async def test_alerts_by_status_and_notices_delivered(settings, pool, uid, exposition):
    source = f"dev-{uid}"
    violation = Violation(
        violation_id=violation_id("device", source, "COLD_CHAIN_FREEZER_WARM", now_ms()),
        code="COLD_CHAIN_FREEZER_WARM", state="active", enterprise_id=f"ent-{uid}", site_id=f"site-{uid}",
        source_kind="device", source_id=source, window_start=now_ms() - 60_000, detected_at=now_ms(),
        severity="major", detector="test", summary="too warm",
    )  # fmt: skip
    service = AlertService(settings)
    async with service:
        before_counts = await service.count_statuses()
        before = await scrape(exposition)
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(VIOLATIONS, encode(violation), key=source.encode())
        finally:
            await producer.stop()

        async def stored() -> bool:
            async with pool.connection() as conn:
                row = await (
                    await conn.execute("SELECT status FROM alerts WHERE source_id = %s", (source,))
                ).fetchone()
            return row is not None

        await until(stored, "the alert to be stored")
        counts = await service.count_statuses()
        after = await scrape(exposition)
    async with pool.connection() as conn:
        live = dict(
            await (
                await conn.execute(
                    "SELECT status, count(*) FROM alerts WHERE status NOT IN ('closed', 'dismissed')"
                    " GROUP BY status"
                )
            ).fetchall()
        )
    assert counts["open"] >= before_counts["open"] + 1
    for status, n in counts.items():
        assert value(after, "vigil_alerts", status=status) == n == live.get(status, 0)
    assert value(after, "vigil_alerts", status="closed") == 0, "terminal statuses are not counted"
    opened = "vigil_alerts_violations_total"
    assert value(after, opened, outcome="opened") - value(before, opened, outcome="opened") >= 1

    # The new alert queued its notice and its change on the outbox: the notifier delivers them.
    async with Notifier(settings) as notifier:
        delivered_before = await scrape(exposition)

        async def delivered() -> bool:
            async with pool.connection() as conn:
                row = await (
                    await conn.execute(
                        "SELECT count(*) FROM outbox WHERE alert_id = %s AND delivered_at IS NULL",
                        (violation.violation_id,),
                    )
                ).fetchone()
            return row is not None and row[0] == 0

        await until(delivered, "the notifier to deliver the alert's outbox rows")
        assert notifier.stats.changes >= 1
    after = await scrape(exposition)
    for channel in ("mqtt_notice", "alert_stream"):
        name = "vigil_notices_total"
        got = value(after, name, channel=channel, outcome="delivered")
        assert got > value(delivered_before, name, channel=channel, outcome="delivered"), channel
