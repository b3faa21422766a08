"""ThingsBoard's device SDK in a venv of its own (a fixture plugin of tests/conftest.py).

`thingsboard_sdk_python`: the interpreter of a venv holding `tb-mqtt-client` (module
`tb_device_mqtt`), for tests that run ThingsBoard's real device SDK as a subprocess
(tests/data/thingsboard_device.py, driven by tests/ingest/test_thingsboard.py).

Why not a dev extra of the project: the SDK requires `tb-paho-mqtt-client`, a fork that installs
over paho-mqtt's own files (Vigil codes against paho-mqtt itself), it ships a top-level module named
`utils` (and a stray site-packages `__init__.py`), and on import it runs pip itself
(`utils.install_package`) when it finds the fork or `mmh3` missing. So it lives apart:
`~/.cache/vigil/tb-mqtt-client-<version>/` (or under `$XDG_CACHE_HOME`), built once with
`python -m venv` and `pip install tb-mqtt-client==<version> mmh3`, then checked by importing the SDK
with its pip installer replaced by one that fails (so it never installs anything at run time).

The venv is built in a temporary folder beside it and renamed into place only when complete (a
killed build leaves no half cache; the next build removes its leftovers), under a file lock
(sessions starting together build once; the others wait and use it). A renamed venv runs through
its `bin/python` (which finds its `pyvenv.cfg` beside it); its console scripts, which name the
temporary folder, are never used. Where pip cannot get the SDK (no package index reachable, or an
index without it) the tests that need it are skipped with pip's reason; any other failure is an
error.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from shell.infra import build_lock, cache_root

log = logging.getLogger(__name__)

SDK_VERSION = "1.13.14"
# mmh3: the SDK's firmware checksums import it and pip-install it on import when it is missing.
REQUIREMENTS = (f"tb-mqtt-client=={SDK_VERSION}", "mmh3")
# The device the tests run in that venv (under tests/data/: pytest does not collect it).
DEVICE_SCRIPT = Path(__file__).parent / "data" / "thingsboard_device.py"
_INFO = "VIGIL-BUILD-INFO.json"  # written last before the rename: a venv without it is not one

# Imported in the new venv before it is accepted: the SDK must import without running pip.
_CHECK = """
import importlib, utils
def refuse(package, version="upgrade"):
    raise SystemExit(f"tb-mqtt-client tried to pip-install {package} ({version}) on import")
utils.install_package = refuse
importlib.import_module("tb_device_mqtt")
"""

# pip's words when it could not reach a package index, or the index it reached has no such release.
_UNREACHABLE = re.compile(
    r"Failed to establish a new connection: [^'\")]*|Temporary failure in name resolution"
    r"|Name or service not known|Network is unreachable|ConnectTimeoutError|ReadTimeoutError"
    r"|ProxyError|SSLError|Max retries exceeded[^\n]*"
)
_MISSING = re.compile(r"No matching distribution found for [^\n]*")


class SdkUnavailable(Exception):
    """pip could not get the SDK (the tests that need it are skipped)."""


def _python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _ready(venv: Path) -> bool:
    """Built whole, for these requirements, and its base interpreter still there."""
    try:
        info = json.loads((venv / _INFO).read_text())
    except (OSError, ValueError):
        return False
    return bool(info.get("requirements") == list(REQUIREMENTS) and _python(venv).exists())


def _run(args: list[str], what: str) -> str:
    done = subprocess.run(args, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip()
        if what == "pip install" and (unreachable := _UNREACHABLE.search(output)):
            raise SdkUnavailable(f"pip cannot reach a package index ({unreachable.group(0)[:200]})")
        if what == "pip install" and (missing := _MISSING.search(output)):
            raise SdkUnavailable(f"the package index lacks it: pip says {missing.group(0)}")
        raise RuntimeError(f"{what} failed (exit {done.returncode}):\n{output[-4000:]}")
    return done.stdout


def ensure_sdk_venv(*, say: Callable[[str], None] = log.info) -> Path:
    """The cached venv's interpreter, the venv built first if it is not there. SdkUnavailable if pip
    cannot get the SDK; RuntimeError (with pip's output) if the build fails otherwise."""
    root = cache_root()
    name = f"tb-mqtt-client-{SDK_VERSION}"
    final = root / name
    if _ready(final):
        return _python(final)
    root.mkdir(parents=True, exist_ok=True)
    with build_lock(root / f"{name}.lock", "the ThingsBoard SDK venv", say):
        if _ready(final):  # built by whoever held the lock before us
            return _python(final)
        if final.exists():  # from other requirements, or its base interpreter is gone
            shutil.rmtree(final)
        for stale in root.glob(f".{name}.build-*"):  # a build that was killed
            shutil.rmtree(stale, ignore_errors=True)
        started = time.monotonic()
        work = Path(tempfile.mkdtemp(prefix=f".{name}.build-", dir=root))
        try:
            _run([sys.executable, "-m", "venv", str(work)], "python -m venv")
            python = str(_python(work))
            # -I: none of this process's PYTHONPATH or user site leaks into the SDK's venv.
            _run([python, "-I", "-m", "pip", "install", "--no-input", "--disable-pip-version-check",
                  "--timeout", "30", "--retries", "2", *REQUIREMENTS], "pip install")  # fmt: skip
            _run([python, "-I", "-c", _CHECK], "importing tb_device_mqtt in its venv")
            freeze = _run([python, "-I", "-m", "pip", "freeze", "--all"], "pip freeze").split()
            (work / _INFO).write_text(json.dumps({"requirements": list(REQUIREMENTS), "installed": freeze}))
            os.rename(work, final)  # atomic: the venv appears whole or not at all
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        say(f"built the ThingsBoard SDK venv {final} in {time.monotonic() - started:.0f} s")
    return _python(final)


@pytest.fixture(scope="session")
def thingsboard_sdk_python() -> Path:
    """The interpreter of the SDK's own venv; the test is skipped where pip cannot get the SDK."""
    try:
        return ensure_sdk_venv()
    except SdkUnavailable as exc:
        pytest.skip(f"ThingsBoard SDK tests skipped: {exc}")
