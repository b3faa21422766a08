"""The ThingsBoard device endpoint: ThingsBoard's device SDK (and any ThingsBoard-style device)
connects here, with its access token as the MQTT username, and publishes `v1/devices/me/telemetry`
and `v1/devices/me/attributes`.

Why ingest serves these devices itself instead of the shared broker: every ThingsBoard device
publishes to the same topic name, so the device is known only from the connection that carried the
message. Mosquitto (2.0, without a C plugin) cannot tell a subscriber who published a message, nor
rewrite a topic per client (its `mount_point` is per listener, not per account), and amqtt speaks
only MQTT 3.1.1 while the SDK speaks MQTT 5. Here the connection is authenticated against the
registry's hashed token (`vigil.keys.device_for_token`) and every message is forwarded as that
device's, whichever broker the rest of Vigil uses.

A small MQTT 3.1.1 / 5 server, only what devices need: CONNECT with a username, PUBLISH at QoS 0 or
1 (the PUBACK goes out after Kafka has the reading, as for the broker path), SUBSCRIBE and
UNSUBSCRIBE (granted, nothing but RPC replies is ever sent), PINGREQ, DISCONNECT. The SDK's
`getSessionLimits` RPC is answered at once, so it does not wait 5 s for a timeout; other RPCs get
an error reply. Shared attributes and server-side RPC are not offered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import orjson

from vigil.registry import Device

log = logging.getLogger(__name__)

PREFIX = "v1/devices/me/"
TELEMETRY_TOPIC, ATTRIBUTES_TOPIC = PREFIX + "telemetry", PREFIX + "attributes"
RPC_REQUEST, RPC_RESPONSE = PREFIX + "rpc/request/", PREFIX + "rpc/response/"
# Room for MQTT's own headers and properties around the largest payload ingest accepts.
_PACKET_OVERHEAD = 4096
# CONNECT must arrive this soon after the TCP connection opens; a silent socket is closed.
CONNECT_TIMEOUT_S = 10.0
# Before authentication a client may send only this much: a CONNECT holds a client id, a token and
# perhaps a will, a few hundred bytes. Memory an unauthenticated socket can hold stays small.
MAX_CONNECT_BYTES = 8192
# Open connections, authenticated or not: a device keeps one, so this is thousands of devices per
# ingest instance; past it a new socket is closed at once rather than memory growing without end.
MAX_SESSIONS = 20_000

Authenticate = Callable[[str], Awaitable[Device | None]]
# (device, "telemetry" | "attributes", payload) → forwarded to Kafka (or dead-lettered) when it returns.
Accept = Callable[[Device, str, bytes], Awaitable[None]]


class _Closed(Exception):
    """The connection is over (the peer left or broke the protocol)."""


@dataclass(slots=True)
class _Packet:
    kind: int
    flags: int
    body: bytes


class _Reader:
    def __init__(self, body: bytes) -> None:
        self.body, self.at = body, 0

    def take(self, n: int) -> bytes:
        if self.at + n > len(self.body):
            raise _Closed("truncated packet")
        out = self.body[self.at : self.at + n]
        self.at += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int(struct.unpack("!H", self.take(2))[0])

    def binary(self) -> bytes:
        return self.take(self.u16())

    def text(self) -> str:
        try:
            return self.binary().decode()
        except UnicodeDecodeError:
            raise _Closed("a string is not UTF-8") from None

    def varint(self) -> int:
        value, shift = 0, 0
        for _ in range(4):
            byte = self.u8()
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
        raise _Closed("malformed variable-length integer")

    def skip_properties(self) -> None:
        self.take(self.varint())

    def rest(self) -> bytes:
        return self.body[self.at :]


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + _varint(len(body)) + body


def _text(value: str) -> bytes:
    raw = value.encode()
    return struct.pack("!H", len(raw)) + raw


class _Session:
    def __init__(
        self, endpoint: ThingsBoardEndpoint, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self._endpoint, self._reader, self._writer = endpoint, reader, writer
        self._v5 = False
        self._keepalive = 0.0
        self._token = ""

    async def run(self) -> None:
        try:
            first = await asyncio.wait_for(self._read(MAX_CONNECT_BYTES), CONNECT_TIMEOUT_S)
            device = await self._connect(first)
            if device is None:
                return
            while True:
                timeout = self._keepalive * 1.5 if self._keepalive else None
                limit = self._endpoint.max_payload_bytes + _PACKET_OVERHEAD
                packet = await asyncio.wait_for(self._read(limit), timeout)
                if not await self._handle(packet):
                    return
        except (_Closed, TimeoutError, asyncio.IncompleteReadError, ConnectionError) as exc:
            log.debug("ThingsBoard connection closed: %s", exc or type(exc).__name__)
        except Exception:  # the registry or Kafka failed under us: drop this device, keep serving
            log.exception("ThingsBoard connection dropped on an unexpected error")
        finally:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()

    async def _read(self, limit: int) -> _Packet:
        head = await self._reader.readexactly(1)
        length, shift = 0, 0
        for _ in range(4):
            byte = (await self._reader.readexactly(1))[0]
            length |= (byte & 0x7F) << shift
            if not byte & 0x80:
                break
            shift += 7
        else:
            raise _Closed("malformed remaining length")
        if length > limit:
            raise _Closed(f"packet of {length} bytes is over the limit")
        return _Packet(head[0] >> 4, head[0] & 0x0F, await self._reader.readexactly(length))

    async def _send(self, data: bytes) -> None:
        self._writer.write(data)
        await self._writer.drain()

    async def _connect(self, packet: _Packet) -> Device | None:
        if packet.kind != 1:
            raise _Closed("the first packet must be CONNECT")
        r = _Reader(packet.body)
        if r.text() not in ("MQTT", "MQIsdp"):
            raise _Closed("not MQTT")
        level, flags = r.u8(), r.u8()
        self._keepalive = float(r.u16())
        if level not in (4, 5):
            await self._send(_packet(0x20, b"\x00\x01"))  # unacceptable protocol version (3.1.1 code)
            return None
        self._v5 = level == 5
        if self._v5:
            r.skip_properties()
        r.text()  # the client id: this endpoint keeps no session state under it
        if flags & 0x04:  # a will: ThingsBoard devices set none, and it would go nowhere here
            if self._v5:
                r.skip_properties()
            r.text()
            r.binary()
        self._token = r.text() if flags & 0x80 else ""
        device = await self._endpoint.authenticate(self._token) if self._token else None
        if device is None:
            # 5: 0x86 bad user name or password; 3.1.1: 4, the same.
            await self._send(_packet(0x20, b"\x00\x86\x00" if self._v5 else b"\x00\x04"))
            log.info("ThingsBoard connection refused: unknown or revoked access token")
            return None
        # No CONNACK properties: the SDK learns its limits from the getSessionLimits reply.
        await self._send(_packet(0x20, b"\x00\x00\x00" if self._v5 else b"\x00\x00"))
        log.info("ThingsBoard device %s connected", device.device_id)
        return device

    async def _handle(self, packet: _Packet) -> bool:
        r = _Reader(packet.body)
        if packet.kind == 3:
            await self._publish(packet, r)
        elif packet.kind in (8, 10):  # SUBSCRIBE, UNSUBSCRIBE
            pid = r.u16()
            if self._v5:
                r.skip_properties()
            codes = bytearray()
            while r.at < len(r.body):
                topic = r.text()
                if packet.kind == 8:
                    requested = r.u8() & 0x03
                    codes.append(min(requested, 1) if topic.startswith(PREFIX) else 0x80)
                else:
                    codes.append(0)
            ack = struct.pack("!H", pid) + (b"\x00" if self._v5 else b"")
            if packet.kind == 8:
                await self._send(_packet(0x90, ack + bytes(codes)))
            else:
                await self._send(_packet(0xB0, ack + (bytes(codes) if self._v5 else b"")))
        elif packet.kind == 12:
            await self._send(b"\xd0\x00")
        elif packet.kind == 14:
            return False
        elif packet.kind not in (4, 5, 6, 7):  # acks of what we send at QoS 0 never come; ignore stray ones
            raise _Closed(f"unexpected packet type {packet.kind}")
        return True

    async def _publish(self, packet: _Packet, r: _Reader) -> None:
        qos = (packet.flags >> 1) & 0x03
        if qos == 2:
            raise _Closed("QoS 2 is not supported; publish at QoS 0 or 1")
        topic = r.text()
        pid = r.u16() if qos else 0
        if self._v5:
            r.skip_properties()
        payload = r.rest()
        # The token is checked again (cached briefly by the caller), so a revoked token stops
        # working on a connection that is already open, not only at the next connect.
        device = await self._endpoint.authenticate(self._token)
        if device is None:
            raise _Closed("access token revoked")
        reason = 0x00
        if topic == TELEMETRY_TOPIC:
            await self._endpoint.accept(device, "telemetry", payload)
        elif topic == ATTRIBUTES_TOPIC:
            await self._endpoint.accept(device, "attributes", payload)
        elif topic.startswith(RPC_REQUEST) and topic[len(RPC_REQUEST) :].isdigit():
            await self._send(_packet(0x30, self._rpc_reply(topic[len(RPC_REQUEST) :], payload)))
        else:
            reason = 0x87  # not authorized: this endpoint takes nothing else
            log.info("device %s published to %r, which is not accepted", device.device_id, topic[:100])
        if qos == 1:
            ack = struct.pack("!H", pid) + (bytes([reason]) if self._v5 and reason else b"")
            await self._send(_packet(0x40, ack))

    def _rpc_reply(self, request_id: str, payload: bytes) -> bytes:
        try:
            method = orjson.loads(payload).get("method")
        except (orjson.JSONDecodeError, AttributeError):
            method = None
        if method == "getSessionLimits":
            answer: dict[str, object] = {
                "maxPayloadSize": self._endpoint.max_payload_bytes,
                "maxInflightMessages": 100,
                "rateLimits": {},  # none: back-pressure is the PUBACK, sent after Kafka has it
            }
        else:
            answer = {"error": f"RPC method {str(method)[:64]!r} is not supported"}
        body = _text(RPC_RESPONSE + request_id) + (b"\x00" if self._v5 else b"") + orjson.dumps(answer)
        return body


class ThingsBoardEndpoint:
    """The listening socket; `authenticate` maps an access token to its device (None: refused)."""

    def __init__(
        self, host: str, port: int, *, authenticate: Authenticate, accept: Accept, max_payload_bytes: int
    ) -> None:
        self.host, self.port = host, port
        self.authenticate, self.accept = authenticate, accept
        self.max_payload_bytes = max_payload_bytes
        self._server: asyncio.Server | None = None
        self._sessions: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        log.info("ThingsBoard device endpoint on %s:%d", self.host, self.port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._sessions) >= MAX_SESSIONS:
            log.warning("ThingsBoard endpoint: %d connections open, refusing another", len(self._sessions))
            writer.close()
            return
        self._sessions.add(task)
        try:
            await _Session(self, reader, writer).run()
        finally:
            self._sessions.discard(task)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._sessions):
            task.cancel()
        await asyncio.gather(*self._sessions, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
