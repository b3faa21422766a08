"""Pure-Python MQTT broker (amqtt) for machines without `mosquitto`:
`python -m shell.amqtt_broker PORT [--auth-dir DIR]`.

With `--auth-dir` it enforces the files `vigil mqtt acl` writes for Mosquitto (shell/mqtt_acl.py):
`passwd` and `service-passwd` (Mosquitto's `$7$` PBKDF2-SHA512 hashes) and `acl` (`user` blocks
of `topic read|write|readwrite <filter>`), re-read whenever they change; nobody is anonymous and
nothing not granted is allowed. What it cannot do is bind client ids to accounts: amqtt 0.12
deletes (clean session) or takes over (persistent session) the session of a client id before it
authenticates the newcomer (`Broker._client_connected`), so no plugin can stop an account from
ending another's session. Mosquitto's `use_username_as_clientid` listener does; it is what the
demo runs wherever Mosquitto is installed, and production always.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import logging
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session

log = logging.getLogger(__name__)
_FILES = ("passwd", "service-passwd", "acl")


def check_mosquitto_hash(password: str, stored: str) -> bool:
    """Whether `password` matches a `$7$<iterations>$<salt>$<digest>` line of a password file."""
    parts = stored.split("$")
    if len(parts) != 5 or parts[1] != "7" or not parts[2].isdigit():
        return False
    try:
        salt, digest = base64.b64decode(parts[3], validate=True), base64.b64decode(parts[4], validate=True)
    except ValueError:
        return False
    mine = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, int(parts[2]))
    return hmac.compare_digest(mine, digest)


def topic_matches(pattern: str, topic: str) -> bool:
    """MQTT filter matching: `+` one level, `#` the rest (including none)."""
    want, have = pattern.split("/"), topic.split("/")
    for i, level in enumerate(want):
        if level == "#":
            return True
        if i >= len(have) or (level != "+" and level != have[i]):
            return False
    return len(want) == len(have)


@dataclass
class Accounts:
    hashes: dict[str, str] = field(default_factory=dict)
    reads: dict[str, list[str]] = field(default_factory=dict)
    writes: dict[str, list[str]] = field(default_factory=dict)


class _AuthFiles:
    """The auth directory's files, parsed again whenever one of them changes (a `refresh`)."""

    def __init__(self, auth_dir: Path) -> None:
        self._dir, self._accounts = auth_dir, Accounts()
        self._stamp: tuple[int, ...] = ()

    def current(self) -> Accounts:
        stamp = tuple((self._dir / name).stat().st_mtime_ns for name in _FILES)
        if stamp != self._stamp:
            self._accounts, self._stamp = self._parse(), stamp
        return self._accounts

    def _parse(self) -> Accounts:
        accounts = Accounts()
        for name in ("passwd", "service-passwd"):
            for line in (self._dir / name).read_text().splitlines():
                name_, sep, stored = line.partition(":")
                if sep and not line.startswith("#"):
                    accounts.hashes[name_] = stored
        user: str | None = None
        for line in (self._dir / "acl").read_text().splitlines():
            words = line.split()
            if len(words) == 2 and words[0] == "user":
                user = words[1]
            elif len(words) == 3 and words[0] == "topic" and user is not None:
                if words[1] in ("read", "readwrite"):
                    accounts.reads.setdefault(user, []).append(words[2])
                if words[1] in ("write", "readwrite"):
                    accounts.writes.setdefault(user, []).append(words[2])
        return accounts


_files: _AuthFiles | None = None


def _accounts() -> Accounts:
    assert _files is not None, "serve(port, auth_dir) sets the auth files before the plugins run"
    return _files.current()


# amqtt ships no type information (ignore_missing_imports): its bases are Any to mypy.
class AccountsAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]
    """A known username with its derived password; never anonymous."""

    async def authenticate(self, *, session: Session) -> bool | None:
        stored = _accounts().hashes.get(session.username or "")
        return stored is not None and check_mosquitto_hash(session.password or "", stored)


class AccountsTopicPlugin(BaseTopicPlugin):  # type: ignore[misc]
    """The ACL file's rules: publish needs a write rule, a message is delivered only where a read
    rule matches its topic (as Mosquitto 2 checks reads per delivery)."""

    async def topic_filtering(
        self, *, session: Session | None = None, topic: str | None = None, action: Action | None = None
    ) -> bool | None:
        if session is None or topic is None or session.username is None:
            return False
        accounts = _accounts()
        if action == Action.PUBLISH:
            return any(topic_matches(rule, topic) for rule in accounts.writes.get(session.username, []))
        if action == Action.SUBSCRIBE:
            return bool(accounts.reads.get(session.username))
        return any(topic_matches(rule, topic) for rule in accounts.reads.get(session.username, []))


async def serve(port: int, auth_dir: Path | None = None) -> None:
    global _files
    plugins: dict[str, Any]
    if auth_dir is None:
        plugins = {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}}
    else:
        _files = _AuthFiles(auth_dir)
        _files.current()  # refuse to start on missing or unreadable files
        plugins = {f"{__name__}.AccountsAuthPlugin": {}, f"{__name__}.AccountsTopicPlugin": {}}
    config = {"listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}}, "plugins": plugins}
    broker = Broker(config)
    await broker.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # `MqttBroker.refresh` sends Mosquitto's reload signal; the files are re-read when they change.
    loop.add_signal_handler(signal.SIGHUP, lambda: None)
    print("ready", flush=True)
    await stop.wait()
    await broker.shutdown()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    parser = argparse.ArgumentParser(prog="python -m shell.amqtt_broker")
    parser.add_argument("port", type=int)
    parser.add_argument("--auth-dir", type=Path, help="the files of `vigil mqtt acl`; unset = anonymous")
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.auth_dir))
