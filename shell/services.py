"""The services table and `vigil run <service>`: one service in this process, against configured
infrastructure, as production runs it.

Each row names the service, builds it (imported only when it runs, so `vigil --help` and the other
commands do not load onnxruntime, FastAPI and every client library) and says which infrastructure
it needs; `vigil demo` starts the rows in this order and stops them in reverse.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vigil import metrics
from vigil.errors import VigilError
from vigil.service import Service
from vigil.settings import Settings

log = logging.getLogger("vigil")

KAFKA, DATABASE, MQTT = "VIGIL_KAFKA_BOOTSTRAP", "VIGIL_DATABASE_URL", "VIGIL_MQTT_URL"


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    name: str
    build: Callable[[Settings], Service]
    needs: tuple[str, ...]  # the settings `vigil run` refuses to start without


def _alerts(s: Settings) -> Service:
    from alerts.service import AlertService

    return AlertService(s)


def _notifier(s: Settings) -> Service:
    from alerts.notifier import Notifier

    return Notifier(s)


def _detector_telemetry(s: Settings) -> Service:
    from detectors.telemetry import TelemetryDetector

    return TelemetryDetector(s)


def _telemetry_store(s: Settings) -> Service:
    from ingest.storage import TelemetryStore

    return TelemetryStore(s)


def _detector_vision(s: Settings) -> Service:
    from detectors.vision.service import VisionDetector

    return VisionDetector(s)


def _ingest(s: Settings) -> Service:
    from ingest.bridge import MqttKafkaBridge

    return MqttKafkaBridge(s)


def _camera_ingest(s: Settings) -> Service:
    from ingest.camera.service import CameraIngest

    return CameraIngest(s)


def _api(s: Settings) -> Service:
    from api.server import ApiService

    return ApiService(s)


# In pipeline order: consumers before the producers that feed them, the API last.
SERVICES: dict[str, ServiceSpec] = {
    spec.name: spec
    for spec in (
        ServiceSpec("alerts", _alerts, (KAFKA, DATABASE)),
        ServiceSpec("notifier", _notifier, (KAFKA, DATABASE, MQTT)),
        ServiceSpec("detector-telemetry", _detector_telemetry, (KAFKA, DATABASE)),
        ServiceSpec("telemetry-store", _telemetry_store, (KAFKA, DATABASE)),
        ServiceSpec("detector-vision", _detector_vision, (KAFKA, DATABASE)),
        ServiceSpec("ingest", _ingest, (KAFKA, DATABASE, MQTT)),
        ServiceSpec("camera-ingest", _camera_ingest, (KAFKA, DATABASE)),
        ServiceSpec("api", _api, (DATABASE,)),
    )
}


async def until_signalled(services: list[Service]) -> int:
    """Wait for SIGINT/SIGTERM (exit 0) or for any service's background task to die (exit 1)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(stop.wait())]
    waits += [s.failed for s in services if s.failed is not None]
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    waits[0].cancel()  # the failure futures belong to the services: never cancel those
    return 0 if stop.is_set() else 1


async def stop_all(services: list[Service]) -> None:
    for service in reversed(services):
        try:
            await service.stop()
        except Exception:
            log.exception("stopping %s failed", service.name)


async def run_service(name: str, settings: Settings) -> int:
    spec = SERVICES[name]
    configured = {KAFKA: settings.kafka_bootstrap, DATABASE: settings.database_url, MQTT: settings.mqtt_url}
    missing = [env for env in spec.needs if not configured[env]]
    if missing:
        raise VigilError(f"`vigil run {name}` needs configured infrastructure; set {', '.join(missing)}")
    service = spec.build(settings)
    # Served before the service starts, so a service stuck starting (waiting for Kafka) is still
    # seen by Prometheus: its process metrics are there, its own counters are not yet.
    exposition = metrics.serve(settings.metrics_port, settings.metrics_host)
    try:
        await service.start()
        log.info("%s running", name)
        try:
            return await until_signalled([service])
        finally:
            await service.stop()
    finally:
        if exposition is not None:
            exposition.stop()


def add_parsers(sub: Any) -> None:
    r = sub.add_parser("run", help="run one service against configured infrastructure")
    r.add_argument("service", choices=sorted(SERVICES))
    r.set_defaults(handler=_run)


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    return await run_service(args.service, settings)
