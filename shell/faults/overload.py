"""Overload: a burst at ten times the normal rate, readings and (where camera ingest runs) pushed
frames. Memory must stay bounded (RSS of the service processes sampled throughout), frames may be
shed but only counted, and no reading may be lost: telemetry is pushed back on, never shed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import cv2
import httpx

from shell.faults.faults import (
    DURATION_S,
    RECOVERY_LIMIT_S,
    SETTLE_S,
    TAIL_S,
    WARMUP_S,
    Site,
    Wave,
    count,
)
from shell.faults.harness import Cluster, rss_kib
from shell.faults.report import FaultResult, Overload
from vigil.cameras import register_camera

# The burst: ten times the normal rate, for readings and frames alike.
FACTOR = 10
# A camera's normal rate: what `vigil cameras register` defaults to (frames analysed per second).
FRAME_FPS = 2.0
# RSS is sampled this often: fine enough to catch a peak that lasts a fraction of a second.
_SAMPLE_S = 0.2
# Scene frames are rendered small: the burst measures the pipeline, not the renderer's CPU.
_SCENE_SIZE = (320, 240)


def _total_rss_mib(cluster: Cluster) -> float:
    return sum(rss_kib(s.pid) for s in cluster.services.values() if s.alive()) / 1024


async def _push_frames(
    cluster: Cluster, camera_id: str, stop: asyncio.Event, rate: list[float], pushed: list[int]
) -> None:
    """Push changing scene frames as an edge box would, at `rate[0]` frames a second."""
    from simulators.camera import DEMO_LOOP_S, DEMO_SCRIPT, KitchenScene

    width, height = _SCENE_SIZE
    scene = KitchenScene(DEMO_SCRIPT, width=width, height=height, loop_s=DEMO_LOOP_S)
    url = f"http://127.0.0.1:{cluster.ingest_http_port}/v1/cameras/{camera_id}/frames"
    headers = {"Authorization": f"Bearer {cluster.push_token}", "Content-Type": "image/jpeg"}
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=10.0) as http:
        while not stop.is_set():
            frame = scene.render(time.monotonic() - started)
            ok, jpeg = cv2.imencode(".jpg", frame)
            if ok:
                with contextlib.suppress(httpx.HTTPError):  # a refused push is the edge box's problem
                    response = await http.post(url, content=jpeg.tobytes(), headers=headers)
                    if response.status_code == 202:
                        pushed[0] += 1
            await asyncio.sleep(1 / rate[0])


async def _camera_counters(cluster: Cluster, camera_id: str) -> dict[str, Any]:
    url = f"http://127.0.0.1:{cluster.ingest_http_port}/v1/cameras/stats"
    async with httpx.AsyncClient(timeout=10.0) as http:
        stats = (await http.get(url)).json()["cameras"]
    found: dict[str, Any] = stats.get(camera_id, {}).get("frames", {})
    return found


async def run_overload(cluster: Cluster, site: Site, index: int, *, quick: bool) -> FaultResult:
    burst_s = 5.0 if quick else 20.0  # long enough to fill the bounded queues several times over
    failing, normal = (4, 2) if quick else (12, 6)
    wave: Wave = await site.new_wave(index, failing=failing, normal=normal, fault_s=burst_s)
    frames = "camera-ingest" in cluster.services
    camera_id = f"cam-{wave.enterprise}"
    if frames:
        assert cluster.pool is not None
        await register_camera(
            cluster.pool, enterprise_id=wave.enterprise, site_id=f"{wave.enterprise}-site",
            camera_id=camera_id, source="push", sample_fps=FRAME_FPS,
        )  # fmt: skip
    factor = [1]
    rate = [FRAME_FPS]
    pushed = [0]
    samples: list[float] = []
    stop, stop_sampling = asyncio.Event(), asyncio.Event()

    async def sample() -> None:
        while not stop_sampling.is_set():
            samples.append(_total_rss_mib(cluster))
            await asyncio.sleep(_SAMPLE_S)

    tasks = [asyncio.create_task(site.stream(wave, stop, factor=lambda: factor[0]))]
    if frames:
        tasks.append(asyncio.create_task(_push_frames(cluster, camera_id, stop, rate, pushed)))
    try:
        await asyncio.sleep(WARMUP_S)
        before = _total_rss_mib(cluster)
        sampler = asyncio.create_task(sample())
        sent_before = wave.sent
        factor[0], rate[0] = FACTOR, FRAME_FPS * FACTOR
        await asyncio.sleep(burst_s)
        factor[0], rate[0] = 1, FRAME_FPS
        burst_end = time.monotonic()
        in_flight = wave.sent - sent_before
        last_due = max(wave.warm_at.values(), default=burst_end) + DURATION_S
        await asyncio.sleep(max(burst_end + TAIL_S, last_due + TAIL_S) - time.monotonic())
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    recovery: float | None = None
    while time.monotonic() < burst_end + RECOVERY_LIMIT_S:
        c = await count(cluster, wave)
        if c.found == failing and c.notices_delivered >= failing and c.stored >= wave.sent:
            recovery = time.monotonic() - burst_end
            break
        await asyncio.sleep(0.2)
    await asyncio.sleep(SETTLE_S)
    stop_sampling.set()
    await sampler
    after = _total_rss_mib(cluster)
    c = await count(cluster, wave)
    counters = await _camera_counters(cluster, camera_id) if frames else {}
    return FaultResult(
        fault=f"overload {FACTOR}x",
        in_flight=in_flight,
        alerts_expected=failing,
        alerts_found=c.found,
        alerts_duplicated=c.duplicated,
        alerts_unexpected=c.unexpected,
        notices_expected=failing,
        notices_delivered=c.notices_delivered,
        notices_duplicated=c.notices_duplicated,
        telemetry_sent=wave.sent,
        telemetry_stored=c.stored if "telemetry-store" in cluster.services else wave.sent,
        recovery_s=recovery,
        overload=Overload(
            factor=FACTOR,
            rss_before_mib=before,
            rss_peak_mib=max(samples, default=before),
            rss_after_mib=after,
            frames_pushed=pushed[0],
            frames_sent=int(counters.get("sent", 0)),
            frames_gated=int(counters.get("gated", 0)),
            frames_analysed=int(counters.get("analysed", 0)),
            frames_shed=int(counters.get("dropped", 0)) + int(counters.get("too_large", 0)),
        ),
    )
