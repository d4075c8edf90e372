"""Make the README's console screenshot (docs/console.png): a broker with a little traffic for
half a minute (so that the rate chart has points), then the overview in headless Chromium.

    .venv/bin/python scripts/console_screenshot.py [docs/console.png]
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from a2a_broker_client import BrokerClient
from a2a_broker_client.models import RetryPolicy
from playwright.async_api import async_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from broker.config import Settings  # noqa: E402
from broker.server import start_server  # noqa: E402


async def traffic(client: BrokerClient, seconds: float) -> None:
    await client.register("planner", capabilities=["plan"])
    for i in range(3):
        await client.register(f"summarizer-{i}", capabilities=["summarize"], max_concurrent_tasks=4)
    await client.register("translator", capabilities=["translate"])
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    n = 0
    while loop.time() < end:
        n += 1
        if n % 20 == 0:  # stay online (agents heartbeat every 10 s)
            for agent_id in ("planner", "translator", "summarizer-0", "summarizer-1", "summarizer-2"):
                await client.heartbeat(agent_id)
        await client.send(
            "planner", f"summarizer-{n % 3}", b'{"doc": %d}' % n, content_type="application/json"
        )
        sub = await client.submit(
            f"summarize doc {n}", required_capabilities=["summarize"], retry=RetryPolicy(max_retries=0)
        )
        if n % 2 == 0:
            for a in await client.claim(f"summarizer-{n % 3}", max_tasks=2):
                if a.task.task_id == sub.task.task_id and n % 10 == 0:
                    await client.fail(a.task.task_id, f"summarizer-{n % 3}", a.attempt, "model timeout")
                else:
                    await client.complete(a.task.task_id, f"summarizer-{n % 3}", a.attempt, b"ok")
        await asyncio.sleep(0.15)
    await client.send("planner", "translator", b"\x00bad", message_type="translate")


async def main(out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            address="127.0.0.1:0", db=f"{tmp}/broker.db", http_address="127.0.0.1:0", console_refresh_s=0.5
        )
        broker = await start_server(settings)
        try:
            async with BrokerClient(broker.address) as client:
                await traffic(client, 32)
            async with async_playwright() as p:
                browser = await p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
                page = await browser.new_page(viewport={"width": 1280, "height": 820})
                await page.goto(f"http://{broker.http_address}/")
                await page.wait_for_selector('[data-count="messages.ready"]')
                await page.wait_for_timeout(1500)
                await page.screenshot(path=str(out))
                await browser.close()
        finally:
            await broker.stop(0.5)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "docs" / "console.png")))
