"""The small lifecycle every Vigil service follows: `start()`, `stop()` (idempotent), `async with`.

Background work runs in named tasks whose references are kept, so none is garbage-collected
mid-flight and every one is cancelled and awaited on stop. A task that dies unexpectedly sets
`failed`, which `vigil run` watches to exit non-zero instead of idling as a zombie.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, Self

log = logging.getLogger(__name__)


class Service:
    name = "service"

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._started = False
        self._stopped = False
        self.failed: asyncio.Future[BaseException] | None = None

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        self.failed = asyncio.get_running_loop().create_future()
        await self._start()

    async def stop(self) -> None:
        if not self._started or self._stopped:
            return
        self._stopped = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._stop()

    async def _start(self) -> None:
        raise NotImplementedError

    async def _stop(self) -> None:
        return None

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=f"{self.name}:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("%s died", task.get_name(), exc_info=exc)
            if self.failed is not None and not self.failed.done():
                self.failed.set_result(exc)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
