"""The fault suite's cluster: embedded Kafka, MQTT and PostgreSQL as `vigil demo` starts them, with
a cuttable TCP proxy in front of Kafka and of PostgreSQL, and every Vigil service as a real
subprocess (`python -m shell.cli run <service>`) that can be killed with SIGKILL and started again.

The harness itself talks to PostgreSQL directly (not through the proxy), so it can still count
alerts while the services are cut off from the database.

With a `Partition` (shell/faults/netns.py), the services named `isolated` run in its network
namespace, a second "host": the Kafka and database proxies and Mosquitto then also listen on the
link's default-namespace address, and every service is given that address.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from psycopg_pool import AsyncConnectionPool

from shell.faults.netns import Partition
from shell.faults.proxy import DatabaseProxy, TcpProxy
from shell.infra import (
    ChildProcess,
    Infrastructure,
    die_with_parent,
    free_port,
    start_kafka,
    start_mqtt,
    start_s3,
)
from vigil.db import make_pool, migrate
from vigil.kafka import ensure_topics
from vigil.settings import Settings

log = logging.getLogger(__name__)

# A clean stop (SIGTERM) gets this long before SIGKILL: services commit and close within seconds.
_STOP_TIMEOUT_S = 15.0
# How long a service may take to be up (imports, model load, consumer-group join) on a loaded
# 2-core machine before the suite calls the start failed.
_READY_TIMEOUT_S = 90.0
# What a service logs once it is running (`vigil run` prints "<name> running").
_READY_MARK = b" running"


def rss_kib(pid: int) -> int:
    """Resident set size of a process in KiB, from /proc (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


class ServiceProcess:
    """One service as `python -m shell.cli run <name>`, logging to `<workdir>/<name>.log`."""

    def __init__(
        self, name: str, env: dict[str, str], workdir: Path, *, enter: Callable[[], None] | None = None
    ) -> None:
        self.name, self._env, self._workdir = name, env, workdir
        self._enter = enter  # run in the child before exec: joins a network namespace
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._log_offset = 0

    @property
    def log_path(self) -> Path:
        return self._workdir / f"{self.name}.log"

    def spawn(self) -> None:
        self.starts += 1
        with self.log_path.open("ab") as out:
            self._log_offset = out.tell()
            out.write(f"---- start {self.starts} ----\n".encode())
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "shell.cli", "run", self.name],
                env=self._env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=self._preexec,
            )

    def _preexec(self) -> None:
        if self._enter is not None:
            self._enter()
        die_with_parent()  # a killed suite leaves no service behind

    async def wait_ready(self, timeout_s: float = _READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; see {self.log_path}")
            with self.log_path.open("rb") as f:
                f.seek(self._log_offset)
                if _READY_MARK in f.read():
                    return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.name} not running after {timeout_s}s; see {self.log_path}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(_STOP_TIMEOUT_S)

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.terminate()
        try:
            return self.proc.wait(_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(_STOP_TIMEOUT_S)


class Cluster:
    """Brokers, database, proxies and service processes for one fault-suite run."""

    def __init__(
        self,
        services: Sequence[str],
        *,
        extra_env: dict[str, str] | None = None,
        partition: Partition | None = None,
        isolated: Sequence[str] = (),
    ) -> None:
        self.names = list(services)
        self.partition, self.isolated = partition, set(isolated) if partition else set()
        # Where the services reach the brokers and the database: loopback, or the partition link's
        # address (a local address too, so the default namespace's services use it alike).
        self.host = partition.host_addr if partition else "127.0.0.1"
        self.workdir = Path(tempfile.mkdtemp(prefix="vigil-faults-"))
        self.workdir.chmod(0o755)
        self._extra_env = extra_env or {}
        self._infra: Infrastructure | None = None
        self._kafka: ChildProcess | None = None
        self._kafka_port = 0
        self._s3: ChildProcess | None = None
        self._s3_endpoint = ""
        self._mqtt: ChildProcess | None = None
        self.mqtt_port = 0
        self.kafka_proxy: TcpProxy | None = None
        self.db_proxy: DatabaseProxy | None = None
        self.services: dict[str, ServiceProcess] = {}
        self.pool: AsyncConnectionPool | None = None
        self.kafka_bootstrap = self.mqtt_url = self.database_url = ""
        self.ingest_http_port = free_port()
        # Shared by camera ingest and the suite's pushing edge box (each demo process would make its own).
        self.push_token = secrets.token_urlsafe(24)

    async def start(self) -> None:
        # Kafka listens on one port and advertises the proxy's: every client, after bootstrap,
        # connects to the address in the metadata, so only an advertised proxy sees all traffic.
        self._kafka_port = free_port()
        self.kafka_proxy = TcpProxy(("127.0.0.1", self._kafka_port))
        await self.kafka_proxy.start(0, self.host)
        # The broker keeps its topics in a local S3 server of its own process, so that it can be
        # killed and started again without losing them (the "Kafka broker restart" fault).
        self._s3, self._s3_endpoint = await asyncio.to_thread(start_s3, self.workdir)
        await self.start_kafka()
        await self.start_mqtt()
        self._infra = Infrastructure(
            Settings(mode="demo", kafka_bootstrap=self.kafka_bootstrap, mqtt_url=self.mqtt_url)
        )
        settings = await asyncio.to_thread(self._infra.start)
        assert settings.database_url
        direct_db = settings.database_url
        await migrate(direct_db)
        await ensure_topics(self.kafka_bootstrap)
        self.db_proxy = DatabaseProxy(direct_db)
        self.database_url = await self.db_proxy.start(0, self.host)
        self.pool = make_pool(direct_db, name="vigil-faults", max_size=4)
        await self.pool.open(wait=True)
        env = (
            os.environ
            | {
                "VIGIL_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
                "VIGIL_DATABASE_URL": self.database_url,
                "VIGIL_MQTT_URL": f"mqtt://{self.host}:{self.mqtt_port}",
                "VIGIL_MODE": "demo",  # generated secrets, as `vigil demo`
                "VIGIL_EVIDENCE_DIR": str(self.workdir / "evidence"),
                "VIGIL_INGEST_HTTP_PORT": str(self.ingest_http_port),
                "VIGIL_CAMERA_PUSH_TOKEN": self.push_token,
                # The suite judges delivery, not the learned model: its early warnings would be alerts
                # the scripted site does not predict (and cost CPU the 2-core CI machine lacks).
                "VIGIL_EARLY_WARNING": "false",
            }
            | self._extra_env
        )
        for name in self.names:
            enter = self.partition.enter if self.partition and name in self.isolated else None
            self.services[name] = ServiceProcess(name, env, self.workdir, enter=enter)
            self.services[name].spawn()
        # Started together, waited for together: the imports overlap instead of queueing.
        await asyncio.gather(*(s.wait_ready() for s in self.services.values()))
        for name in self.isolated & self.services.keys():
            # A partition that cuts nothing would pass for a survived one: check where they run.
            assert self.partition is not None
            if not self.partition.holds(self.services[name].pid):
                raise RuntimeError(f"{name} is not in network namespace {self.partition.name}")

    async def start_mqtt(self) -> None:
        """(Re)start Mosquitto on the same port, with persistence: sessions survive a restart."""
        self.mqtt_port = self.mqtt_port or free_port()
        (self.workdir / "mqtt").mkdir(exist_ok=True)
        self._mqtt, self.mqtt_url = await asyncio.to_thread(
            start_mqtt,
            self.workdir / "mqtt",
            self.mqtt_port,
            persistent=True,
            also_on=(self.host,) if self.partition else (),
        )

    async def start_kafka(self) -> None:
        """(Re)start the broker on the same port and the same S3 storage."""
        assert self.kafka_proxy is not None
        self._kafka, self.kafka_bootstrap = await asyncio.to_thread(
            start_kafka,
            self.workdir,
            self._kafka_port,
            advertised_port=self.kafka_proxy.port,
            advertised_host=self.host,
            s3_endpoint=self._s3_endpoint,
        )

    async def kill_kafka(self) -> None:
        """SIGKILL the broker: no chance to flush anything it had not already written to S3."""
        assert self._kafka is not None
        self._kafka.proc.kill()
        await asyncio.to_thread(self._kafka.stop)

    async def stop_mqtt(self) -> None:
        assert self._mqtt is not None
        await asyncio.to_thread(self._mqtt.stop)  # SIGTERM: Mosquitto saves its sessions first

    async def restart_service(self, name: str) -> None:
        self.services[name].spawn()
        await self.services[name].wait_ready()

    async def stop(self) -> dict[str, int | None]:
        """Stop everything; returns each service's exit status (0 = a clean stop)."""
        codes: dict[str, int | None] = {}
        for name in reversed(self.names):
            if name in self.services:
                codes[name] = await asyncio.to_thread(self.services[name].stop)
        if self.pool is not None:
            await self.pool.close()
        for proxy in (self.kafka_proxy, self.db_proxy):
            if proxy is not None:
                await proxy.stop()
        for part in (self._mqtt, self._kafka, self._s3):
            if part is not None:
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(part.stop)
        if self._infra is not None:
            await asyncio.to_thread(self._infra.stop)
        shutil.rmtree(self.workdir, ignore_errors=True)
        return codes

    async def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        assert self.pool is not None
        async with self.pool.connection() as conn, conn.cursor() as cur:
            await cur.execute(sql, params)
            return await cur.fetchall()
