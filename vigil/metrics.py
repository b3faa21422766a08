"""Prometheus metrics of every Vigil service, and their HTTP exposition.

The metrics are defined once here, on prometheus_client's default registry (which also carries the
process metrics: CPU, memory, open files), so their names and help texts live in one place and a
process that runs several services (`vigil demo`) exposes them all on one port.

Each process serves them on `VIGIL_METRICS_PORT` (0 = off, the default outside containers and in
the tests that do not ask for it); Prometheus adds the `job` and `instance` labels, so no metric
carries the service's or the host's name. Labels are bounded sets only (an outcome, a reason code,
a channel, a partition): never a device or camera id, whose thousands of series would cost the
Prometheus server more than the numbers are worth. Per-camera counters stay on the camera
ingest's own `/metrics` (`ingest/camera/http.py`), which is scraped separately where wanted.

Hot loops add to these counters once per batch (ingest, the detectors), not once per message: a
prometheus_client increment takes a lock, which is nothing per batch and measurable per message
at 50,000 messages a second.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, Info, start_http_server

from vigil import __version__

log = logging.getLogger(__name__)

build_info = Info("vigil_build", "Vigil version of this process.")
build_info.info({"version": __version__})

# --- ingest (MQTT → Kafka) ------------------------------------------------------------------------
ingest_received = Counter("vigil_ingest_messages_received", "Device MQTT messages taken off the broker.")
ingest_forwarded = Counter(
    "vigil_ingest_messages_forwarded", "Device MQTT messages acknowledged by Kafka on vigil.telemetry.v1."
)
ingest_records = Counter(
    "vigil_ingest_records_produced",
    "Kafka records the forwarded messages became (a ThingsBoard list is several).",
)
ingest_dead_lettered = Counter(
    "vigil_ingest_messages_dead_lettered",
    "Device MQTT messages refused to vigil.deadletter.v1, by reason.",
    ["reason"],
)

# --- camera ingest --------------------------------------------------------------------------------
camera_frames = Counter(
    "vigil_camera_ingest_frames",
    "Camera frames by outcome: gated (static, not sent by design), passed (changed, or a keyframe, "
    "handed to the sender), sent (acknowledged by Kafka), dropped (shed: Kafka could not keep up), "
    "too_large (over VIGIL_FRAME_MAX_BYTES, dead-lettered).",
    ["outcome"],
)
camera_keyframes = Counter(
    "vigil_camera_ingest_keyframes", "Frames passed although static, to keep the detector's view current."
)
cameras = Gauge("vigil_camera_ingest_cameras", "Cameras of this camera ingest, by state.", ["state"])
camera_clips = Counter(
    "vigil_camera_ingest_clips",
    "Event clips by outcome: encoded (whole window), truncated (the camera dropped mid-clip or had "
    "not been running long enough), failed (the encoder or the evidence store failed: the alert "
    "stands without a clip), no_frames (none of this instance's frames fall in the window).",
    ["outcome"],
)
api_live_viewers = Gauge("vigil_api_live_viewers", "Live camera viewers open on this API process.")
camera_live_frames = Counter(
    "vigil_camera_ingest_live_frames",
    "Frames published on vigil.live.v1 for live viewers, by outcome: sent, or dropped (the live "
    "queue was full: a viewer skips a frame rather than the camera falling behind).",
    ["outcome"],
)
camera_live_watched = Gauge("vigil_camera_ingest_live_watched", "Cameras of this ingest watched live now.")
# Encoding a 10 s clip at 2 fps takes 1-2 s on one core (640x480 to 1280x720): buckets from
# 0.1 s to a minute.
clip_encode_seconds = Histogram(
    "vigil_camera_ingest_clip_encode_seconds",
    "Seconds to encode and store one event clip.",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)

# --- vision detector ------------------------------------------------------------------------------
vision_frames = Counter(
    "vigil_vision_frames",
    "Frames taken from vigil.frames.v1 by outcome: inferred, stale (older than VIGIL_VISION_MAX_LAG_S: "
    "skipped to stay real-time), undecodable, invalid (dead-lettered).",
    ["outcome"],
)
# Batches of 1-8 frames take about 5-200 ms on a CPU for the bundled models; a GPU brings it to a
# few ms. The buckets span both, doubling, so a p95 is readable either way.
vision_inference_seconds = Histogram(
    "vigil_vision_inference_seconds",
    "Model run (inference and output decoding) of one batch of frames.",
    buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0),
)
vision_batch_frames = Histogram(
    "vigil_vision_batch_frames", "Frames per inference batch.", buckets=(1, 2, 4, 8, 16, 32, 64)
)

# --- telemetry detector ---------------------------------------------------------------------------
telemetry_messages = Counter(
    "vigil_telemetry_messages",
    "Device messages judged by the telemetry detector, by kind (telemetry, event, status; invalid: "
    "dead-lettered).",
    ["kind"],
)
# A batch is up to 500 messages at roughly 10-20 µs each: milliseconds. Buckets from 0.1 ms to 2.5 s.
telemetry_rule_seconds = Histogram(
    "vigil_telemetry_rule_evaluation_seconds",
    "Rule (and early-warning) evaluation of one fetched batch, without waiting for Kafka's "
    "acknowledgements; divide by vigil_telemetry_messages for the time per message.",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
violations = Counter("vigil_detector_violations", "Violations emitted, by detector.", ["detector"])
# Issue 16.6: a late message (stamped earlier than its device's newest) is stored but not judged by
# the rules, so it must at least be counted where an operator looks.
telemetry_late = Counter(
    "vigil_telemetry_late_messages",
    "Device messages stamped earlier than the device's newest, so not judged by the order-dependent "
    "rules (telemetry, event); the telemetry store keeps them all the same.",
    ["kind"],
)

# --- Kafka consumers (every consumer-group service) -----------------------------------------------
consumer_lag = Gauge(
    "vigil_kafka_consumer_lag",
    "Records on the partition not yet handed to this consumer: the partition's high watermark less "
    "the consumer's position, sampled periodically.",
    ["group", "topic", "partition"],
)

# --- alerts and notices ---------------------------------------------------------------------------
alert_violations = Counter(
    "vigil_alerts_violations",
    "Violations applied by the alerts service, by outcome (opened, repeated, cleared, replayed, "
    "dead_lettered).",
    ["outcome"],
)
alerts_by_status = Gauge(
    "vigil_alerts",
    "Alerts not yet closed or dismissed, by status, counted in the database periodically.",
    ["status"],
)
notices = Counter(
    "vigil_notices",
    "Outbox deliveries by channel (mqtt_notice, webhook, alert_stream) and outcome (delivered, "
    "failed: retried later, dead: given up).",
    ["channel", "outcome"],
)


# --- API -------------------------------------------------------------------------------------------
api_auth_failures = Counter(
    "vigil_api_auth_failures",
    "Refused API credentials (a key or token presented and not accepted); a request without one is "
    "not counted.",
)
api_auth_throttled = Counter(
    "vigil_api_auth_throttled",
    "Requests answered 429 because their address failed authentication too often "
    "(VIGIL_API_AUTH_FAILURES_PER_MINUTE).",
)


class MetricsServer:
    """The process's exposition endpoint (`GET /metrics` on any path), served on a daemon thread by
    prometheus_client; it reads the registry under the metrics' own locks, so scraping never
    touches a service's event loop."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self._host, self._requested = host, port
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (the real one when 0 was asked for)."""
        return int(self._server.server_port) if self._server is not None else self._requested

    def start(self) -> MetricsServer:
        self._server, self._thread = start_http_server(self._requested, addr=self._host, registry=REGISTRY)
        log.info("metrics on http://%s:%d/metrics", self._host, self.port)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


def serve(port: int, host: str = "127.0.0.1") -> MetricsServer | None:
    """Start the process's exposition on `port` (VIGIL_METRICS_PORT); None when it is 0 (off)."""
    return MetricsServer(port, host).start() if port else None
