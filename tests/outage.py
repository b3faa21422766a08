"""A real network outage for a test: a TCP proxy in front of PostgreSQL that can be cut.

The service under test connects through the proxy. `cut()` drops every open connection and refuses
new ones until `restore()`; the database itself keeps running for the rest of the session.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit


class DatabaseProxy:
    def __init__(self, database_url: str) -> None:
        parts = urlsplit(database_url)
        query = parse_qs(parts.query)
        self._url = parts
        self._query = {k: v[0] for k, v in query.items() if k != "host"}
        host = query.get("host", [parts.hostname or "127.0.0.1"])[0]
        port = parts.port or 5432
        # A Unix-socket directory (the embedded PostgreSQL) or a TCP host.
        self._target: tuple[str, int] | str = (
            f"{host}/.s.PGSQL.{port}" if host.startswith("/") else (host, port)
        )
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()
        self.up = True

    async def start(self) -> str:
        """Start listening; returns the database URL that goes through the proxy."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        netloc = f"{self._url.username or 'postgres'}@127.0.0.1:{port}"
        return urlunsplit((self._url.scheme, netloc, self._url.path, urlencode(self._query), ""))

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.up:
            writer.close()  # refused: the database is "down"
            return
        if isinstance(self._target, str):
            up_reader, up_writer = await asyncio.open_unix_connection(self._target)
        else:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        self._links |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
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
