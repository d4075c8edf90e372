"""What the console's browser tests share beside their fixtures (conftest.py)."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from a2a_broker_client import BrokerClient
from playwright.async_api import Page, expect

from broker.server import Broker, start_server
from tests.conftest import make_settings

CONSOLE = {"http_address": "127.0.0.1:0", "console_refresh_s": 0.2}
WAIT_MS = 10_000


def chromium_path() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail(
            "chromium is not installed: `make test` installs Debian's chromium (apt-get install chromium)"
        )
    return found


@asynccontextmanager
async def serving(tmp_path: Path, **overrides: Any) -> AsyncIterator[Broker]:
    """A broker with its console (CONSOLE's settings and ``overrides``), stopped at the end."""
    b = await start_server(make_settings(tmp_path, **{**CONSOLE, **overrides}))
    try:
        yield b
    finally:
        await b.stop(0.2)


def url(broker: Broker, fragment: str = "") -> str:
    return f"http://{broker.http_address}/{fragment}"


async def count(page: Page, key: str, value: int) -> None:
    await expect(page.locator(f'[data-count="{key}"]')).to_have_text(str(value), timeout=WAIT_MS)


async def dead_letter(client: BrokerClient, recipient: str, payload: bytes, sender: str = "orch") -> str:
    """Send a message to ``recipient`` and reject it: a dead letter."""
    mid = (await client.send(sender, recipient, payload)).message_ids[0]
    consumption = client.consume(recipient)
    async with consumption:
        stream = aiter(consumption)
        while (m := await asyncio.wait_for(anext(stream), 10)).message_id != mid:
            await consumption.nack(m.message_id)
        await consumption.nack(mid, reject=True, reason="malformed order")
    return mid


async def sign_in(page: Page, broker: Broker, token: str) -> None:
    await page.goto(url(broker))
    await expect(page.locator("form.login")).to_be_visible(timeout=WAIT_MS)
    await page.fill('input[name="token"]', token)
    await page.click('form.login button[type="submit"]')
