"""The dashboard's event-stream parser (js/sse.js), run in the browser on awkward chunkings: lines
split anywhere (a CRLF across two chunks included), comments, id-only events, multi-line data."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import pytest
from fastapi import FastAPI

from api import dashboard
from shell.infra import free_port
from tests.browser.conftest import Pages
from vigil.http import EmbeddedHttpServer


@pytest.fixture
async def static_site() -> AsyncIterator[str]:
    """Only the dashboard's files, served over HTTP (modules load from their own origin)."""
    app = FastAPI()
    app.include_router(dashboard.router)
    server = EmbeddedHttpServer(app, host="127.0.0.1", port=free_port(), label="dashboard")
    tasks: list[asyncio.Task[Any]] = []

    def spawn(coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        tasks.append(asyncio.create_task(coro, name=name))  # kept: a task nobody holds may vanish
        return tasks[-1]

    await server.start(spawn)
    try:
        yield server.url
    finally:
        await server.shutdown()


STREAM = (
    "retry: 2500\r\n"
    "id: 0:5,1:7\r\n\r\n"  # an id-only event: moves the position, dispatches nothing
    ": ping\r\n\r\n"
    'id: 0:6,1:7\r\ndata: {"alert_id":"a1","status":"open"}\r\n\r\n'
    "event: note\ndata: first line\ndata:second line\n\n"
    'data: {"alert_id":"a2",\rdata: "status":"closed"}\r\r'
    "id: bad\0id\n"  # an id with NUL is ignored
    "data: tail\n\n"
)


async def test_the_parser_survives_any_chunking(static_site: str, pages: Pages) -> None:
    page = await pages.new("parser")
    await page.goto(f"{static_site}/dashboard/")
    for size in (1, 2, 3, 7, len(STREAM)):
        result = await page.evaluate(
            """async ([text, size]) => {
                const { EventStreamParser } = await import("./assets/js/sse.js");
                const events = [];
                let retry = null;
                const parser = new EventStreamParser((e) => events.push(e), (ms) => { retry = ms; });
                for (let i = 0; i < text.length; i += size) parser.push(text.slice(i, i + size));
                return { events, retry, lastEventId: parser.lastEventId };
            }""",
            [STREAM, size],
        )
        assert result["retry"] == 2500, size
        assert result["lastEventId"] == "0:6,1:7", size
        assert result["events"] == [
            {"type": "message", "data": '{"alert_id":"a1","status":"open"}', "id": "0:6,1:7"},
            {"type": "note", "data": "first line\nsecond line", "id": "0:6,1:7"},
            {"type": "message", "data": '{"alert_id":"a2",\n"status":"closed"}', "id": "0:6,1:7"},
            {"type": "message", "data": "tail", "id": "0:6,1:7"},
        ], size
    assert not pages.errors, pages.errors
