"""Sending a 400 MB request body to a real server without holding it in memory, reading the answer
while still sending (as a client would see a server that refuses early)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

BODY_BYTES = 400 * 1024 * 1024
CHUNK = 256 * 1024
# The bound: the process may grow by less than this while refusing 400 MB.
MAX_GROWTH_KIB = 20 * 1024


def _chunks(total: int) -> Iterator[bytes]:
    """`total` bytes of a JSON-looking body, one reused chunk at a time (never built in memory)."""
    block = b"[" + b"1," * (CHUNK // 2 - 1) + b"1"
    sent = 0
    while sent < total:
        piece = block[: total - sent]
        sent += len(piece)
        yield piece


async def send_huge_body(
    port: int, path: str, *, chunked: bool, headers: dict[str, str] | None = None
) -> int:
    """POST a 400 MB body to `path`, streamed, reading the answer while still sending; the status."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    head += [f"{k}: {v}" for k, v in (headers or {}).items()]
    head.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {BODY_BYTES}")
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode())

    async def pump() -> None:
        for piece in _chunks(BODY_BYTES):
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            await writer.drain()
        if chunked:
            writer.write(b"0\r\n\r\n")
            await writer.drain()

    sender = asyncio.create_task(pump())
    try:
        async with asyncio.timeout(120):
            status_line = await reader.readline()
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
        writer.close()
        await asyncio.gather(writer.wait_closed(), return_exceptions=True)
    assert status_line.startswith(b"HTTP/1.1 "), status_line
    return int(status_line.split()[1])
