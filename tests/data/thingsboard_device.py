"""A ThingsBoard device on ThingsBoard's own SDK (`tb-mqtt-client`), for tests/ingest/test_thingsboard.py.

Run by the SDK's own venv (tests/thingsboard_sdk.py), never imported by the project or collected by
pytest:

    python -I thingsboard_device.py HOST PORT TOKEN WAIT_S

It connects with the access token as its MQTT username and waits up to WAIT_S seconds for the
connection and the SDK's session limits (its `getSessionLimits` RPC), then writes one JSON line:
`{"connected": bool, "session_limits_s": seconds from connect to the limits, or null}`.
Then it reads JSON commands, one a line, from stdin and answers each with a JSON line:

    {"telemetry": {...}}  or  {"attributes": {...}}   sent as is → {"rc": int}
    ... with "ack": true   also waits for the PUBACK   → {"rc": int, "acked": bool}

At the end of stdin it disconnects and writes `{"disconnected": true}`. The SDK logs to stderr.
"""

from __future__ import annotations

import importlib
import json
import logging
import sys
import time
from typing import Any

import utils  # the SDK's own top-level module (tb-mqtt-client ships it)

ACK_TIMEOUT_S = 30.0


def _refuse(package: str, version: str = "upgrade") -> bool:
    raise SystemExit(f"tb-mqtt-client tried to pip-install {package} ({version}); its venv lacks it")


# The SDK pip-installs what it misses on import; here that is an error, never an install.
utils.install_package = _refuse
tb_device_mqtt: Any = importlib.import_module("tb_device_mqtt")


def _say(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def _acked(info: Any, timeout: float) -> bool:
    """Every MQTT message behind the SDK's publish (it may split one) acknowledged in time."""
    messages = info.message_info if isinstance(info.message_info, list) else [info.message_info]
    deadline = time.monotonic() + timeout
    try:
        for message in messages:
            message.wait_for_publish(timeout=max(0.0, deadline - time.monotonic()))
        return all(message.is_published() for message in messages)
    except (RuntimeError, ValueError) as exc:  # not queued, or the connection failed under it
        logging.getLogger(__name__).warning("publish failed: %s", exc)
        return False


def _rc(info: Any) -> int:
    rc = info.rc()  # an int, or paho's ReasonCode where the SDK split the payload
    return int(getattr(rc, "value", rc))


def main(host: str, port: str, token: str, wait_s: str) -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    client = tb_device_mqtt.TBDeviceMqttClient(host, port=int(port), username=token)
    started = time.monotonic()
    client.connect(timeout=10)
    deadline = started + float(wait_s)
    while not (client.is_connected() and client.rate_limits_received) and time.monotonic() < deadline:
        time.sleep(0.02)
    limits_s = time.monotonic() - started if client.rate_limits_received else None
    _say(connected=client.is_connected(), session_limits_s=limits_s)
    try:
        for line in sys.stdin:
            command = json.loads(line)
            if "telemetry" in command:
                info = client.send_telemetry(command["telemetry"])
            else:
                info = client.send_attributes(command["attributes"])
            if command.get("ack"):
                acked = _acked(info, ACK_TIMEOUT_S)
                _say(rc=_rc(info), acked=acked)
            else:
                _say(rc=_rc(info))
    finally:
        client.disconnect()
    _say(disconnected=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
