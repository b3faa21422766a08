"""Browser fixtures: Debian's Chromium driven by Playwright, and a page tracker that saves a
screenshot of every open page when a test fails.

The browser is always `/usr/bin/chromium` (CI installs Debian's package); Playwright's own browser
downloads are never used. Without it the browser tests skip, saying so.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.browser.running import pipeline, vigil  # noqa: F401  (fixtures of every browser test module)

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Screenshots of failed tests: a temporary folder of this run (printed with each failure), or
# VIGIL_SCREENSHOTS when set.
ARTIFACTS = Path(
    os.environ.get("VIGIL_SCREENSHOTS") or Path(tempfile.gettempdir()) / "vigil-browser-screenshots"
)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    # Each phase's report on the item, so a fixture's teardown can tell that the test failed.
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{report.when}", report)


def _failed(node: pytest.Item) -> bool:
    return any(
        getattr(node, f"rep_{phase}", None) is not None and getattr(node, f"rep_{phase}").failed
        for phase in ("setup", "call")
    )


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium package to run the browser tests")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@dataclass
class Pages:
    """Opens pages (each in its own browser context: its own sessionStorage) and records what
    they say: uncaught errors and console errors, such as a Content-Security-Policy refusal."""

    browser: Any
    contexts: list[Any] = field(default_factory=list)
    pages: list[tuple[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    async def new(
        self, label: str, *, lang: str | None = None, width: int = 1280, height: int = 900, **options: Any
    ) -> Any:
        """A page in a fresh context; `lang` ("zh-CN" or "en") is the dashboard's remembered language
        (unset: the dashboard's default, zh-CN)."""
        context = await self.browser.new_context(viewport={"width": width, "height": height}, **options)
        if lang is not None:
            await context.add_init_script(
                f"try {{ localStorage.setItem('vigil.lang', {lang!r}) }} catch (e) {{}}"
            )
        # Generous: on a loaded machine a page's first load (its modules, catalogues, the API in the
        # test's own process) once took over 15 s (two pytest workers beside the fault suite's
        # cluster). These tests check behaviour; speed lives in `vigil bench`.
        context.set_default_timeout(30_000)
        self.contexts.append(context)
        page = await context.new_page()

        def console(msg: Any) -> None:
            if msg.type == "error":
                self.console_errors.append(f"{label}: {msg.text}")

        page.on("pageerror", lambda exc: self.errors.append(f"{label}: {exc}"))
        page.on("console", console)
        self.pages.append((label, page))
        return page

    def csp_violations(self) -> list[str]:
        return [m for m in self.console_errors if "Content Security Policy" in m or "Refused to" in m]

    async def screenshot_all(self, test_name: str) -> list[Path]:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", test_name)
        saved = []
        for label, page in self.pages:
            if page.is_closed():
                continue
            path = ARTIFACTS / f"{safe}-{label}.png"
            try:
                await page.screenshot(path=str(path), full_page=True, timeout=5_000)
                saved.append(path)
            except Exception as exc:  # a crashed page: say so, keep the other screenshots
                print(f"could not screenshot {label}: {exc!r}")
        return saved

    async def close(self) -> None:
        for context in self.contexts:
            await context.close()


@pytest.fixture
async def pages(browser: Any, request: pytest.FixtureRequest) -> AsyncIterator[Pages]:
    tracker = Pages(browser)
    try:
        yield tracker
    finally:
        if _failed(request.node):
            for path in await tracker.screenshot_all(request.node.name):
                print(f"screenshot: {path}")
            if tracker.errors or tracker.console_errors:
                print("page errors:", *tracker.errors, *tracker.console_errors, sep="\n  ")
        await tracker.close()
