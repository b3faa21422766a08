"""`vigil demo`: embedded Kafka, MQTT and PostgreSQL, every service in this process, a simulated
kitchen (a freezer that fails) and two simulated cameras, ready keys printed; Ctrl-C stops all.
`--timescaledb`: the PostgreSQL has TimescaleDB (built once from ../shared/timescaledb, cached), so
telemetry goes into a compressed hypertable as in production."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from datetime import datetime
from typing import Any

import orjson

from shell.services import SERVICES, stop_all, until_signalled
from vigil import metrics
from vigil.service import Service
from vigil.settings import Settings


def add_parsers(sub: Any) -> None:
    d = sub.add_parser("demo", help="embedded brokers and database, all services, a simulated site")
    d.add_argument("--no-site", action="store_true", help="do not start the simulated site")
    d.add_argument("--api-port", type=int, default=None)
    d.add_argument(
        "--timescaledb", action="store_true",
        help="PostgreSQL with TimescaleDB, built once from ../shared/timescaledb (about a minute)",
    )  # fmt: skip
    d.set_defaults(handler=_demo)


async def _demo(settings: Settings, args: argparse.Namespace) -> int:
    update: dict[str, Any] = {"mode": "demo"}
    if args.api_port:
        update["api_port"] = args.api_port
    return await demo(
        settings.model_copy(update=update), with_site=not args.no_site, timescaledb=args.timescaledb
    )


async def demo(settings: Settings, *, with_site: bool, timescaledb: bool = False) -> int:
    from shell.infra import DEMO_KAFKA_PORT, DEMO_MQTT_PORT, Infrastructure
    from simulators.kitchen_cameras import SimulatedKitchenCameras
    from simulators.site import SimulatedSite
    from vigil.db import make_pool, migrate
    from vigil.kafka import ensure_topics

    database_note = ""
    if timescaledb:
        ready = await _timescaledb_ready(settings)
        if ready is None:
            return 2
        database_note = f"   ({ready})"
    # The broker has production's accounts and ACLs (shell/mqtt_acl.py); the credentials are printed.
    infra = Infrastructure(
        settings, kafka_port=DEMO_KAFKA_PORT, mqtt_port=DEMO_MQTT_PORT, timescaledb=timescaledb,
        mqtt_accounts=True,
    )  # fmt: skip
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
            if infra.mqtt_broker is not None:  # accounts for the devices and enterprise just registered
                from shell.mqtt_acl import load_view

                infra.mqtt_broker.refresh(await load_view(pool))
            await _demo_staff(pool, site.spec.site_id)
            await _demo_location(pool, site.spec.site_id)
            demo_keys = await _demo_keys(pool, site.spec.enterprise_id)
            cameras = SimulatedKitchenCameras(
                pool, enterprise_id=site.spec.enterprise_id, site_id=site.spec.site_id,
                photos=s.vision_model != "sim-markers",  # the cartoon scenes are for that model only
            )  # fmt: skip
            await cameras.start()
            services.append(cameras)
        for name, spec in SERVICES.items():
            service = spec.build(s)
            await service.start()
            services.append(service)
            print(f"  ✓ {name}", flush=True)
        if with_site:
            await site.start()
            services.append(site)
            print(f"  ✓ simulated site {site.spec.site_id}: {len(site.spec.devices)} devices, "
                  f"{site.spec.devices[0].device_id} fails after {site.spec.fail_after_s:g}s")  # fmt: skip
            shows = (
                "one real held-out photo each, held steady: faces with and without masks, cigarettes"
                if cameras.photos
                else "scripted: no mask, smoking, a rat, lens covered; every 2 min"
            )
            for camera_id, server in zip(cameras.camera_ids, cameras.servers, strict=True):
                print(f"  ✓ simulated camera {camera_id}: {server.url} ({shows}; model {s.vision_model})")
            services.append(await _NoticePrinter.start_for(_enterprise_url(infra, s, site.spec.enterprise_id),
                                                           site.spec.enterprise_id))  # fmt: skip
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
            f"/v1/cameras/<id>/frames, the demo's shared token {s.require_secret('camera_push_token')};"
            " outside the demo each edge box has its own: vigil cameras token issue)\n"
            + _mqtt_lines(infra, s, site.spec if with_site else None)
            + f"  Kafka      {s.kafka_bootstrap}\n"
            f"  PostgreSQL {s.database_url}{database_note}\n",
            flush=True,
        )
        return await until_signalled(services)
    finally:
        print("vigil demo: stopping…", flush=True)
        await stop_all(services)
        if pool is not None:
            await pool.close()
        await asyncio.to_thread(infra.stop)
        if exposition is not None:
            exposition.stop()


def _enterprise_url(infra: Any, s: Settings, enterprise_id: str) -> str:
    """Where the demo's notice printer subscribes: as the enterprise's own account, as an enterprise
    would, where the broker has accounts; else (a configured VIGIL_MQTT_URL) the services' URL."""
    broker = infra.mqtt_broker
    if broker is None:
        assert s.mqtt_url
        return s.mqtt_url
    user = f"enterprise.{enterprise_id}"
    return f"mqtt://{user}:{broker.password(user)}@127.0.0.1:{broker.public_port}"


def _mqtt_lines(infra: Any, s: Settings, spec: Any) -> str:
    """The broker's addresses and the demo's MQTT credentials (derived from the demo's generated
    VIGIL_MQTT_CREDENTIAL_KEY, as production's are from its key)."""
    broker = infra.mqtt_broker
    if broker is None:
        return f"  MQTT       {s.mqtt_url}   (devices publish vigil/v1/<enterprise>/<device>/telemetry)\n"
    lines = (
        f"  MQTT       127.0.0.1:{broker.public_port} for devices and enterprises (no anonymous access;"
        f" the services use {s.mqtt_url})\n"
    )
    if spec is not None:
        device, enterprise = f"device.{spec.devices[0].device_id}", f"enterprise.{spec.enterprise_id}"
        notices = s.require_secret("notice_signing_key")
        from alerts.notices import notice_secret

        lines += (
            f"    device     -u {device} -P {broker.password(device)}"
            f"   (publishes vigil/v1/{spec.enterprise_id}/{spec.devices[0].device_id}/telemetry only)\n"
            f"    enterprise -u {enterprise} -P {broker.password(enterprise)}"
            f"   (reads vigil/v1/{spec.enterprise_id}/notices only)\n"
            f"    notices    signed with {notice_secret(notices, spec.enterprise_id)}"
            "   (alerts.webhook.verify_notice)\n"
        )
    key = s.require_secret("mqtt_credential_key")
    return lines + (
        f"    accounts   VIGIL_MQTT_CREDENTIAL_KEY={key} vigil mqtt password device.<id>; after registering"
        f" a device: vigil mqtt acl --out {broker.auth_dir}/acl --passwd {broker.auth_dir}/passwd"
        f" --service-passwd {broker.auth_dir}/service-passwd && kill -HUP {broker.proc.proc.pid}\n"
    )


async def _timescaledb_ready(settings: Settings) -> str | None:
    """Builds TimescaleDB if it is not cached; says what it is ("TimescaleDB 2.29.2 on PostgreSQL
    18.6"), or prints why it cannot be had and returns None."""
    from shell.timescaledb import TimescaleDBUnavailable, build_info, ensure_built

    if settings.database_url:
        print("vigil demo: --timescaledb starts its own embedded database, but VIGIL_DATABASE_URL is set;"
              " unset it, or drop --timescaledb to use that database", file=sys.stderr)  # fmt: skip
        return None
    try:
        install = await asyncio.to_thread(
            ensure_built, say=lambda line: print(f"vigil demo: {line}", flush=True)
        )
    except TimescaleDBUnavailable as exc:
        print(f"vigil demo: cannot run on TimescaleDB here: {exc}\n"
              "  (`vigil demo` without --timescaledb runs on plain PostgreSQL)", file=sys.stderr)  # fmt: skip
        return None
    info = build_info(install)
    return f"TimescaleDB {info['timescaledb']} on {info['postgresql']}"


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


# Inside the illustrative sample district the demo's map draws (api/static/geo/demo-district.geojson).
DEMO_SITE_LOCATION = (31.205, 121.428)


async def _demo_location(pool: Any, site_id: str) -> None:
    from vigil.registry import set_site_location

    async with pool.connection() as conn, conn.transaction():
        await set_site_location(conn, site_id, *DEMO_SITE_LOCATION)


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
