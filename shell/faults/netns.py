"""A second "host" for the fault suite's network partition: a Linux network namespace joined to the
default one by a veth pair on a private /30 (10.231.X.0/30). Services started inside it
(`Partition.enter`, as a subprocess's `preexec_fn`) reach the brokers and the database only over
that link, at `host_addr`; `cut()` takes the default namespace's end of the link down, so their
packets are silently dropped (TCP retransmits and times out, as across a failed switch), and
`restore()` brings it back up. The default namespace itself still reaches `host_addr` (a local
address stays reachable while its device is down), so only the namespace's services are cut off.

Needs root and `ip` (iproute2); `unavailable()` says why not where either is missing. Everything is
removed on `remove()` (deleting the namespace destroys the veth pair with it); a run killed before
that leaves a namespace named after its dead process, which the next run removes.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import re
import secrets
import shutil
import subprocess
from pathlib import Path
from types import TracebackType

log = logging.getLogger(__name__)

# Every namespace this module makes is named PREFIX<pid>-<hex>: unique per run, and one whose
# process is gone is known to be stale.
PREFIX = "vigil-part-"
_NAME = re.compile(rf"^{re.escape(PREFIX)}(\d+)-[0-9a-f]+$")
_NETNS_DIR = Path("/run/netns")
_CLONE_NEWNET = 0x40000000
# libc's setns, looked up here in the parent: `enter` runs between fork and exec in a process with
# threads, where loading a library (dlopen takes the loader's lock) could hang the child.
_LIBC = ctypes.CDLL(None, use_errno=True)
# `ip` calls are quick; a hung one (a wedged kernel lock) must not hang the suite.
_IP_TIMEOUT_S = 10.0


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    ip = shutil.which("ip") or "/usr/sbin/ip"
    return subprocess.run([ip, *args], capture_output=True, text=True, check=check, timeout=_IP_TIMEOUT_S)


def unavailable() -> str | None:
    """Why network namespaces cannot be used here, or None if they can (tried, not guessed: a
    container may be root and still lack CAP_SYS_ADMIN)."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None and not os.access("/usr/sbin/ip", os.X_OK):
        return "no `ip` command (iproute2)"
    probe = f"{PREFIX}{os.getpid()}-{secrets.token_hex(3)}"  # the sweep's pattern, should it leak
    try:
        made = _ip("netns", "add", probe, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"`ip netns add` failed: {e}"
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip() or made.returncode}"
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        _ip("netns", "del", probe, check=False)
    return None


def _sweep_stale() -> None:
    """Remove namespaces left by a run that was killed before it could clean up."""
    with contextlib.suppress(OSError):
        for entry in _NETNS_DIR.iterdir():
            m = _NAME.match(entry.name)
            if m and not Path(f"/proc/{m.group(1)}").exists():
                log.info("removing stale namespace %s", entry.name)
                _ip("netns", "del", entry.name, check=False)


def _free_subnet() -> int:
    """A third octet X such that 10.231.X.0/30 is not on any interface of the default namespace."""
    used = _ip("-o", "-4", "addr", "show").stdout
    for _ in range(64):
        x = secrets.randbelow(254) + 1
        if f" 10.231.{x}." not in used:
            return x
    raise RuntimeError("no free 10.231.X.0/30 for the partition's link")


class Partition:
    """One namespace and its link; use as a context manager (or `create()` / `remove()`)."""

    def __init__(self) -> None:
        tag = secrets.token_hex(3)
        self.name = f"{PREFIX}{os.getpid()}-{tag}"
        # Interface names are limited to 15 characters.
        self.host_dev, self.ns_dev = f"vgp{tag}h", f"vgp{tag}n"
        self.host_addr = self.ns_addr = ""
        self.created = False

    def create(self) -> Partition:
        _sweep_stale()
        x = _free_subnet()
        self.host_addr, self.ns_addr = f"10.231.{x}.1", f"10.231.{x}.2"
        try:
            _ip("netns", "add", self.name)
            self.created = True
            _ip("link", "add", self.host_dev, "type", "veth", "peer", "name", self.ns_dev)
            _ip("link", "set", self.ns_dev, "netns", self.name)
            _ip("addr", "add", f"{self.host_addr}/30", "dev", self.host_dev)
            _ip("link", "set", self.host_dev, "up")
            _ip("-n", self.name, "addr", "add", f"{self.ns_addr}/30", "dev", self.ns_dev)
            _ip("-n", self.name, "link", "set", self.ns_dev, "up")
            # A service binds and talks to itself on 127.0.0.1 too (health, local sockets).
            _ip("-n", self.name, "link", "set", "lo", "up")
        except BaseException as e:
            self.remove()
            if isinstance(e, subprocess.CalledProcessError):
                raise RuntimeError(f"setting up {self.name}: {e.stderr.strip()}") from e
            raise
        log.info("partition %s: %s (default) <-> %s (namespace)", self.name, self.host_addr, self.ns_addr)
        return self

    def enter(self) -> None:
        """Move the calling process into the namespace: a `preexec_fn`, run between fork and exec,
        so the service keeps its pid (signals reach it, not an `ip netns exec` wrapper)."""
        fd = os.open(_NETNS_DIR / self.name, os.O_RDONLY)
        try:
            if _LIBC.setns(fd, _CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns into {self.name}")
        finally:
            os.close(fd)

    def holds(self, pid: int) -> bool:
        """Whether process `pid` is in this namespace (the harness checks its services are)."""
        try:
            return (_NETNS_DIR / self.name).stat().st_ino == Path(f"/proc/{pid}/ns/net").stat().st_ino
        except OSError:
            return False

    def cut(self) -> None:
        _ip("link", "set", self.host_dev, "down")

    def restore(self) -> None:
        _ip("link", "set", self.host_dev, "up")

    def remove(self) -> None:
        """Delete the namespace (and with it the veth pair and its addresses); safe to repeat."""
        # A hung `ip` must not hide the error that brought us here (remove runs in create's except).
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            if self.created:
                _ip("netns", "del", self.name, check=False)
                self.created = False
            # The pair exists before it moves into the namespace: remove a half-made one too.
            if _ip("link", "show", self.host_dev, check=False).returncode == 0:
                _ip("link", "del", self.host_dev, check=False)

    def exists(self) -> bool:
        return (_NETNS_DIR / self.name).exists() or (
            _ip("link", "show", self.host_dev, check=False).returncode == 0
        )

    def __enter__(self) -> Partition:
        return self.create()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.remove()
