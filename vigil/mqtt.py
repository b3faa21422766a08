"""MQTT plumbing: a paho-mqtt client from a `mqtt://user:pass@host:port` URL, with its network
loop in paho's own thread, and an awaitable QoS 1 publish.

`mqtts://` is MQTT over TLS (port 8883 by default), the broker's certificate checked against the
system's trust store or, for a private CA, `?cafile=/path/ca.crt`; a broker that asks for client
certificates gets `?certfile=...&keyfile=...`. The TLS files ride in the URL so that every client
made from `VIGIL_MQTT_URL` (services, simulators, the recorder) is secured the same way."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from vigil.errors import ConfigurationError, InfrastructureUnavailable

# Seconds between keep-alive pings: a dead peer is noticed within ~1.5× this.
KEEPALIVE_S = 30
# paho reconnects on its own with exponential backoff between these bounds.
RECONNECT_MIN_S, RECONNECT_MAX_S = 1, 30


def mqtt_client(url: str, client_id: str = "", *, clean_session: bool = True, **kwargs: Any) -> mqtt.Client:
    """A configured, not yet connected client (MQTT 3.1.1, which every broker speaks)."""
    parts = urlsplit(url)
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean_session, **kwargs
    )
    if parts.username:
        client.username_pw_set(unquote(parts.username), unquote(parts.password or ""))
    tls = tls_files(url)
    if parts.scheme == "mqtts":
        client.tls_set(ca_certs=tls.get("cafile"), certfile=tls.get("certfile"), keyfile=tls.get("keyfile"))
    elif tls:
        raise ConfigurationError("TLS files in an mqtt:// URL: use mqtts:// for TLS")
    client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
    return client


_TLS_PARAMETERS = ("cafile", "certfile", "keyfile")


def tls_files(url: str) -> dict[str, str]:
    """The TLS file parameters of an MQTT URL; anything else in its query is refused, so that a
    misspelt `cafile` cannot silently fall back to the system's trust store."""
    query = parse_qs(urlsplit(url).query, keep_blank_values=True, strict_parsing=False)
    unknown = set(query) - set(_TLS_PARAMETERS)
    if unknown:
        raise ConfigurationError(f"unknown MQTT URL parameter(s) {sorted(unknown)}; known: {_TLS_PARAMETERS}")
    files = {name: values[-1] for name, values in query.items()}
    if ("certfile" in files) != ("keyfile" in files):
        raise ConfigurationError("an MQTT URL's certfile and keyfile go together")
    return files


def mqtt_address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or (8883 if parts.scheme == "mqtts" else 1883)


async def connect(client: mqtt.Client, url: str, *, timeout_s: float = 10.0) -> None:
    """Connect (blocking socket work off the event loop), start paho's thread, wait for CONNACK."""
    loop = asyncio.get_running_loop()
    connected: asyncio.Future[None] = loop.create_future()
    previous: Callable[..., None] | None = client.on_connect

    def on_connect(c: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if previous is not None:
            previous(c, userdata, flags, reason, props)
        if not connected.done():
            if reason.is_failure:
                loop.call_soon_threadsafe(
                    connected.set_exception, InfrastructureUnavailable(f"MQTT broker refused: {reason}")
                )
            else:
                loop.call_soon_threadsafe(connected.set_result, None)

    client.on_connect = on_connect
    host, port = mqtt_address(url)
    try:
        await asyncio.to_thread(client.connect, host, port, KEEPALIVE_S)
    except OSError as exc:
        raise InfrastructureUnavailable(f"MQTT broker at {host}:{port} unreachable: {exc}") from exc
    client.loop_start()
    try:
        await asyncio.wait_for(connected, timeout_s)
    except TimeoutError:
        client.loop_stop()
        raise InfrastructureUnavailable(f"no CONNACK from the MQTT broker at {host}:{port}") from None
    except InfrastructureUnavailable:
        client.loop_stop()  # refused: don't leave paho's thread reconnecting in the background
        raise


async def publish_qos1(client: mqtt.Client, topic: str, payload: bytes, *, timeout_s: float = 10.0) -> None:
    """Publish at QoS 1 and wait for the broker's PUBACK."""
    if not client.is_connected():
        # paho would queue it and send it on reconnect, and the caller's retry would send it again.
        raise InfrastructureUnavailable(f"MQTT broker not connected; {topic} not published")
    info = client.publish(topic, payload, qos=1)
    if info.rc != mqtt.MQTT_ERR_SUCCESS:
        raise InfrastructureUnavailable(f"MQTT publish to {topic} failed: {mqtt.error_string(info.rc)}")
    try:
        await asyncio.to_thread(info.wait_for_publish, timeout_s)
    except (RuntimeError, ValueError) as exc:
        raise InfrastructureUnavailable(f"MQTT publish to {topic} not acknowledged: {exc}") from exc
    if not info.is_published():
        raise InfrastructureUnavailable(f"MQTT publish to {topic} not acknowledged in {timeout_s}s")


def disconnect(client: mqtt.Client) -> None:
    client.disconnect()
    client.loop_stop()
