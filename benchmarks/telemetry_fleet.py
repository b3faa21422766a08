"""`vigil bench telemetry`'s fleet: freezers and chillers, one in ten out of its limits, their
readings, and the publisher process that sends them to the broker as a device would (MQTT 3.1.1
written straight to a socket). `run_publisher` starts this module as that process."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import astuple
from typing import Any

import orjson

from vigil.errors import VigilError
from vigil.events import Telemetry
from vigil.kafka import now_ms
from vigil.mqtt import mqtt_address
from vigil.registry import Device

INFLIGHT = 1000  # the publisher's window of unacknowledged QoS 1 messages
BACKLOG = 50_000  # most messages published ahead of the receiver (the broker queues 100,000)
STALL_S = 60.0  # no progress for this long: the run is stuck (a lost message, a dead service)
NORMAL, WARM = {"freezer": -20.0, "chiller": 4.0}, {"freezer": -5.0, "chiller": 12.0}
ATTRIBUTES = {"duration_s": 0}  # an excursion is a violation at once: the latency is the pipeline's


def make_devices(count: int, tag: str) -> list[Device]:
    """Freezers and chillers; every tenth (index % 10 == 0) is out of its limits."""
    return [Device(f"bench-{tag}-d{i:05d}", f"bench-{tag}-e{i // 50}", f"bench-{tag}-s{i // 50}",
                   "chiller" if i % 3 == 2 else "freezer", ATTRIBUTES) for i in range(count)]  # fmt: skip


def metrics(d: Device, j: int, i: int, warm: bool) -> dict[str, float]:
    """A cold-room sensor's reading: the profile's metrics and a sensor's housekeeping, ~150 bytes."""
    jitter = ((i * 7919 + j * 104729) % 200) / 100 - 1.0  # ±1, deterministic
    temperature = WARM[d.profile] if warm else NORMAL[d.profile] + jitter
    return {"temperature": round(temperature, 2), "humidity": round(80 + 5 * jitter, 1),
            "setpoint_c": NORMAL[d.profile], "compressor_a": round(3.2 + jitter / 4, 2),
            "battery_v": 3.61, "rssi_dbm": -60 - j % 20}  # fmt: skip


def warm_now(j: int, ts: int, cycling: bool) -> bool:
    """Devices out of limits stay warm through a throughput run; in the real-time stream they
    cycle, 3 s warm then 3 s normal, raising (and clearing) a violation every 6 s."""
    return j % 10 == 0 and (not cycling or (ts // 1000 + j) % 6 < 3)


def readings(devices: list[Device], n: int, *, in_range: bool = False) -> list[Telemetry]:
    """N readings, devices in turn, a second apart per device, the last ten seconds ago."""
    count, t0, out = len(devices), now_ms() - (n // len(devices) + 10) * 1000, []
    for i in range(n):
        j, d, ts = i % count, devices[i % count], t0 + i // count * 1000
        m = metrics(d, j, i, not in_range and warm_now(j, ts, False))
        out.append(Telemetry(d.enterprise_id, d.device_id, d.site_id, d.profile, ts, m, ts))
    return out


def publish(spec: dict[str, Any]) -> dict[str, float]:
    """In its own process (devices are not the services' CPU): readings `first`… as QoS 1, at most
    INFLIGHT unacknowledged, as fast as possible or at `rate`/s stamped with the time of sending.
    MQTT 3.1.1 written straight to the socket: a paho publisher would be the bottleneck."""
    devices, (first, n, rate, t0) = [Device(*d) for d in spec["devices"]], spec["range"]
    sock, client_id = socket.create_connection(mqtt_address(spec["url"])), uuid.uuid4().hex.encode()
    sock.sendall(_packet(0x10, b"\0\x04MQTT\x04\x02\0\0" + len(client_id).to_bytes(2) + client_id))
    if sock.recv(4) != b"\x20\x02\0\0":
        raise VigilError("the MQTT broker refused the publisher")
    acked, count = [0], len(devices)

    def read_acks() -> None:  # PUBACKs are 4 bytes each, and nothing else comes to a publisher
        received = 0
        while acked[0] < n and (chunk := sock.recv(65536)):
            received += len(chunk)
            acked[0] = received // 4

    (reader := threading.Thread(target=read_acks, daemon=True)).start()
    topics = [f"vigil/v1/{d.enterprise_id}/{d.device_id}/telemetry".encode() for d in devices]
    start, i = time.time(), 0
    while i < n:
        if rate and (delay := start + i / rate - time.time()) > 0:
            time.sleep(delay)
        if i - acked[0] >= INFLIGHT:
            time.sleep(0.0002)
            continue
        batch = []
        for k in range(first + i, first + min(n, acked[0] + INFLIGHT, i + 1 if rate else n)):
            j, ts = k % count, now_ms() if rate else t0 + k // count * 1000
            reading = {"ts": ts, "metrics": metrics(devices[j], j, k, warm_now(j, ts, bool(rate)))}
            head = len(topics[j]).to_bytes(2) + topics[j] + (k % 65535 + 1).to_bytes(2)
            batch.append(_packet(0x32, head + orjson.dumps(reading)))
        sock.sendall(b"".join(batch))
        i += len(batch)
    reader.join(STALL_S)
    end = time.time()
    sock.sendall(b"\xe0\0")  # DISCONNECT
    return {"start": start, "end": end, "acked": acked[0]}


def _packet(kind: int, body: bytes) -> bytes:
    size, length = len(body), bytearray()
    while True:  # MQTT's variable-length "remaining length"
        size, digit = size >> 7, size & 0x7F
        length.append(digit | (0x80 if size else 0))
        if not size:
            return bytes([kind]) + bytes(length) + body


async def run_publisher(
    url: str, devices: list[Device], n: int, received: Callable[[], int], rate: float = 0.0
) -> dict[str, float]:
    """Publish in chunks, each once the receiver is less than BACKLOG behind (the broker drops what
    its queue for a slow subscriber cannot hold). Returns the first publish and the last PUBACK."""
    t0, times = now_ms() - (n // len(devices) + 10) * 1000, []
    for first in range(0, n, BACKLOG):
        while first - received() > BACKLOG // 2:  # noqa: ASYNC110 (a counter another thread moves)
            await asyncio.sleep(0.02)
        chunk = (first, min(BACKLOG, n - first), rate, t0)
        spec = {"url": url, "devices": [astuple(d) for d in devices], "range": chunk}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", __name__, stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        out, _ = await proc.communicate(orjson.dumps(spec))
        if proc.returncode != 0:
            raise VigilError(f"the publisher process failed with {proc.returncode}")
        times.append(orjson.loads(out))
    return {"start": times[0]["start"], "end": times[-1]["end"]}


if __name__ == "__main__":  # the publisher process: a JSON spec on stdin, its timings on stdout
    sys.stdout.buffer.write(orjson.dumps(publish(orjson.loads(sys.stdin.buffer.read()))))
