"""Real network outages on demand: a TCP proxy that can be cut and restored.

A service reaches a broker or the database through the proxy. `cut()` drops every open
connection and refuses new ones until `restore()`; the server behind it keeps running, so what the
service sees is the network going away, not the server losing its state. Used by the fault suite
(`vigil bench faults`) and by tests that need a real outage instead of a patched call.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

# One read per hop: large enough for a batch of Kafka records or a frame in few system calls.
_CHUNK = 256 * 1024


class TcpProxy:
    """Listens on 127.0.0.1 (or the host given to `start`) and forwards each connection to
    `target`: `(host, port)` or the path of a Unix socket."""

    def __init__(self, target: tuple[str, int] | str) -> None:
        self._target = target
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()
        self.up = True
        self.port = 0
        self.host = "127.0.0.1"
        self.connections = 0  # accepted while up: lets a caller see that clients came back

    async def start(self, port: int = 0, host: str = "127.0.0.1") -> int:
        """Start listening (on `port`, or a free one); returns the port. `host`: another local
        address, one a second network namespace reaches (the network partition fault)."""
        self.host = host
        self._server = await asyncio.start_server(self._accept, host, port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.up:
            writer.close()  # refused: the server is "unreachable"
            return
        try:
            if isinstance(self._target, str):
                up_reader, up_writer = await asyncio.open_unix_connection(self._target)
            else:
                up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.close()  # the server itself is down: the client sees a refused connection
            return
        self.connections += 1
        self._links |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(_CHUNK):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._links.discard(writer)
            writer.close()

    def cut(self) -> None:
        self.up = False
        for writer in list(self._links):
            writer.close()
        self._links.clear()

    def restore(self) -> None:
        self.up = True

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()


class DatabaseProxy(TcpProxy):
    """A `TcpProxy` in front of PostgreSQL, built from its URL (a TCP host, or the Unix-socket
    directory the embedded PostgreSQL uses); `start()` returns the URL that goes through it."""

    def __init__(self, database_url: str) -> None:
        parts = urlsplit(database_url)
        query = parse_qs(parts.query)
        self._url = parts
        self._query = {k: v[0] for k, v in query.items() if k != "host"}
        host = query.get("host", [parts.hostname or "127.0.0.1"])[0]
        port = parts.port or 5432
        super().__init__(f"{host}/.s.PGSQL.{port}" if host.startswith("/") else (host, port))

    async def start(self, port: int = 0, host: str = "127.0.0.1") -> str:  # type: ignore[override]
        """Start listening; returns the database URL that goes through the proxy."""
        listening = await super().start(port, host)
        netloc = f"{self._url.username or 'postgres'}@{host}:{listening}"
        return urlunsplit((self._url.scheme, netloc, self._url.path, urlencode(self._query), ""))
