"""ThingsBoard devices unchanged: the real `tb-mqtt-client` SDK (in a venv of its own, never the
project's: tests/thingsboard_sdk.py), authenticated by an access token issued by `vigil devices
token issue`, publishes `v1/devices/me/telemetry` and `v1/devices/me/attributes` to ingest's
ThingsBoard endpoint; its readings become an alert, its session-limits RPC is answered at once, a
bad payload is dead-lettered, and a revoked token is refused. Real brokers, database and services
throughout."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path
from typing import Any

import pytest

from alerts.service import AlertService
from detectors.telemetry import TelemetryDetector
from ingest.bridge import MqttKafkaBridge
from shell.infra import free_port
from tests.helpers import KafkaTail
from tests.shell.test_admin import vigil
from tests.thingsboard_sdk import DEVICE_SCRIPT
from vigil.kafka import now_ms
from vigil.registry import register_device
from vigil.settings import Settings
from vigil.topics import DEADLETTER, TELEMETRY

pytestmark = pytest.mark.integration


def _token(settings: Settings, device: str, action: str) -> str:
    done = vigil(settings, "devices", "token", action, device)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()[1] if action == "issue" else done.stdout


class _Device:
    """tests/data/thingsboard_device.py: the SDK in its own venv, a subprocess of this event loop (so
    the services under test keep running), spoken to in JSON lines; the SDK's log goes to `log`."""

    def __init__(self, proc: asyncio.subprocess.Process, log: Path) -> None:
        self._proc, self._log = proc, log

    @classmethod
    async def connect(
        cls, python: Path, port: int, token: str, wait_s: float, log: Path
    ) -> tuple[_Device, Any]:
        """Start it; with the first line it writes: {"connected": ..., "session_limits_s": ...}."""
        with log.open("ab") as err:
            proc = await asyncio.create_subprocess_exec(
                str(python), "-I", str(DEVICE_SCRIPT), "127.0.0.1", str(port), token, str(wait_s),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=err,
            )  # fmt: skip
        device = cls(proc, log)
        try:
            return device, await device._line(wait_s + 30)
        except BaseException:
            await device.close()
            raise

    async def _line(self, timeout: float = 60.0) -> Any:
        assert self._proc.stdout is not None
        line = await asyncio.wait_for(self._proc.stdout.readline(), timeout)
        if not line:
            await self._proc.wait()
            raise AssertionError(f"the SDK device exited ({self._proc.returncode}):\n{self._tail()}")
        return json.loads(line)

    def _tail(self) -> str:
        return "\n".join(self._log.read_text(errors="replace").splitlines()[-30:])

    async def send(self, **command: Any) -> Any:
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(command).encode() + b"\n")
        await self._proc.stdin.drain()
        return await self._line()

    async def close(self) -> None:
        """End of its commands: it disconnects and exits (killed if it does not)."""
        if self._proc.returncode is None:
            assert self._proc.stdin is not None
            with contextlib.suppress(ConnectionError):
                self._proc.stdin.close()
            try:
                await asyncio.wait_for(self._proc.wait(), 15)
            except TimeoutError:
                self._proc.kill()
                await self._proc.wait()
                raise AssertionError(f"the SDK device did not disconnect:\n{self._tail()}") from None
        assert self._proc.returncode == 0, f"the SDK device failed ({self._proc.returncode}):\n{self._tail()}"


async def _alert(pool: Any, device: str, timeout: float = 60.0) -> tuple[str, str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        async with pool.connection() as conn:
            cur = await conn.execute(
                "SELECT code, enterprise_id FROM alerts WHERE source_id = %s AND source_kind = 'device'",
                (device,),
            )
            row = await cur.fetchone()
        if row is not None:
            return str(row[0]), str(row[1])
        await asyncio.sleep(0.5)
    raise AssertionError(f"no alert for {device} within {timeout}s")


async def test_thingsboard_sdk_with_access_token_raises_an_alert(
    thingsboard_sdk_python: Path, settings: Settings, pool: Any, uid: str, tmp_path: Path
) -> None:
    enterprise, device = f"ent-{uid}", f"tb-freezer-{uid}"
    await register_device(
        pool, enterprise_id=enterprise, site_id=f"site-{uid}", device_id=device, profile="freezer",
        attributes={"duration_s": 60},
    )  # fmt: skip
    token = _token(settings, device, "issue")
    async with pool.connection() as conn:  # only the hash is kept
        cur = await conn.execute(
            "SELECT count(*) FROM device_tokens WHERE token_sha256 = sha256(%s)", (token.encode(),)
        )
        assert (await cur.fetchone()) == (1,)
        cur = await conn.execute(
            "SELECT count(*) FROM device_tokens WHERE device_tokens::text LIKE %s", (f"%{token}%",)
        )
        assert (await cur.fetchone()) == (0,)
    s = settings.model_copy(update={"ingest_thingsboard_port": free_port()})
    assert s.kafka_bootstrap
    log = tmp_path / "sdk.log"
    async with contextlib.AsyncExitStack() as stack:
        for service in (AlertService(s), TelemetryDetector(s), MqttKafkaBridge(s, client_id=f"ingest-{uid}")):
            await stack.enter_async_context(service)
        telemetry = await stack.enter_async_context(KafkaTail(s.kafka_bootstrap, TELEMETRY))
        deadletters = await stack.enter_async_context(KafkaTail(s.kafka_bootstrap, DEADLETTER))

        client, hello = await _Device.connect(
            thingsboard_sdk_python, s.ingest_thingsboard_port, token, 10.0, log
        )
        try:
            # The SDK asks for its session limits on connect; answered, it does not wait out 5 s.
            assert hello["connected"], hello
            assert hello["session_limits_s"] is not None and hello["session_limits_s"] < 4.0, hello
            start = now_ms() - 180_000
            for i, temp in enumerate([-20.0, -12.0, -10.5, -9.0, -8.0]):
                sent = await client.send(
                    telemetry={"ts": start + i * 30_000, "values": {"temperature": temp}}, ack=True
                )
                assert sent == {"rc": 0, "acked": True}, sent  # acknowledged: Kafka has it
            await client.send(telemetry={"humidity": 71})  # the SDK sends this as [{"humidity": 71}]
            await client.send(attributes={"firmware": "1.2.3"})
            await client.send(telemetry={"temperature": "warm"})  # not a number: dead-lettered
            records = await telemetry.wait_for(lambda r: r.get("device_id") == device, count=7, timeout=30)
            assert {r["enterprise_id"] for r in records} == {enterprise}
            assert any(r.get("metrics") == {"humidity": 71.0} for r in records)
            assert any(r.get("event") == "attributes" and r["data"] == {"firmware": "1.2.3"} for r in records)
            [letter] = await deadletters.wait_for(lambda r: device in r.get("source", ""), timeout=30)
            assert letter["reason"] == "bad_metric" and "warm" in letter["payload"], letter
            assert await _alert(pool, device) == ("COLD_CHAIN_FREEZER_WARM", enterprise)
        finally:
            await client.close()

        # Revoked: the SDK's next connection is refused (it is still not connected 2 s on).
        _token(settings, device, "revoke")
        await asyncio.sleep(5.5)  # past ingest's token cache
        refused, hello = await _Device.connect(
            thingsboard_sdk_python, s.ingest_thingsboard_port, token, 2.0, log
        )
        try:
            assert not hello["connected"], hello
        finally:
            await refused.close()
