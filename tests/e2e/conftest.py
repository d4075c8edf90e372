"""The console's browser tests' fixtures: a headless Chromium (Debian's ``chromium``, driven by
Playwright through ``executable_path``), a broker with its console, and a page that fails its test
on any JavaScript error."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright

from broker.server import Broker

from .console_support import chromium_path, serving


def pytest_configure(config: pytest.Config) -> None:
    # pytest-xdist registers it too (make test runs the browser tests on one worker, one Chromium
    # at a time); without xdist, --strict-markers needs it here
    config.addinivalue_line("markers", "xdist_group(name): run the tests of a group on one xdist worker")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start
        b = await p.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        try:
            yield b
        finally:
            await b.close()


@pytest.fixture
async def console(tmp_path: Path) -> AsyncIterator[Broker]:
    async with serving(tmp_path) as b:
        yield b


@pytest.fixture
async def token_console(tmp_path: Path) -> AsyncIterator[Broker]:
    async with serving(tmp_path, auth="token") as b:
        yield b


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1360, "height": 900})
    p = await context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield p
    finally:
        await context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
