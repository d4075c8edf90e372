"""#22.11: the console's lists in a real Chromium: newest first by default, oldest first on demand,
the next page continuing in the same order; ids shown in a short form unique within the page, with
a button that copies the whole id."""

from __future__ import annotations

import pytest
from a2a_broker_client import BrokerClient
from playwright.async_api import Browser, Page, expect

from .console_support import WAIT_MS, url

# Under pytest -n (make test) one Chromium at a time: the browser tests run on one worker.
pytestmark = pytest.mark.xdist_group("browser")


async def ids_on(page: Page, row: str, attr: str) -> list[str]:
    return [await r.get_attribute(attr) or "" for r in await page.locator(row).all()]


async def test_lists_show_the_newest_first_and_sort_both_ways_across_pages(console, page):
    async with BrokerClient(console.address, timeout=10) as client:
        await client.register("orch")
        await client.register("w1")
        sent = [(await client.send("orch", "w1", f"n {i}".encode())).message_ids[0] for i in range(60)]
        tasks = [(await client.submit(f"task {i}")).task.task_id for i in range(7)]

    rows = "tr[data-message-id]"
    await page.goto(url(console, "#/messages"))
    await expect(page.locator(rows)).to_have_count(50, timeout=WAIT_MS)
    assert await ids_on(page, rows, "data-message-id") == sent[::-1][:50]
    await page.click('[data-action="next-page"]')
    await expect(page.locator(rows)).to_have_count(10, timeout=WAIT_MS)
    assert await ids_on(page, rows, "data-message-id") == sent[::-1][50:]

    await page.goto(url(console, "#/messages"))
    await expect(page.locator(rows)).to_have_count(50, timeout=WAIT_MS)
    await page.select_option('form.filters select[name="order"]', "oldest")
    await page.click('form.filters button[type="submit"]')
    await expect(page.locator(rows).first).to_have_attribute("data-message-id", sent[0])
    assert await ids_on(page, rows, "data-message-id") == sent[:50]
    await page.click('[data-action="next-page"]')
    await expect(page.locator(rows)).to_have_count(10, timeout=WAIT_MS)
    assert await ids_on(page, rows, "data-message-id") == sent[50:]

    await page.goto(url(console, "#/tasks"))
    await expect(page.locator("tr[data-task-id]")).to_have_count(7, timeout=WAIT_MS)
    assert await ids_on(page, "tr[data-task-id]", "data-task-id") == tasks[::-1]
    await page.goto(url(console, "#/tasks?order=oldest"))
    await expect(page.locator("tr[data-task-id]").first).to_have_attribute("data-task-id", tasks[0])


async def test_ids_are_short_and_unique_on_the_page_and_copied_whole(console, browser: Browser, tmp_path):
    async with BrokerClient(console.address, timeout=10) as client:
        await client.register("orch")
        await client.register("w1")
        for i in range(30):
            await client.send("orch", "w1", f"n {i}".encode(), conversation_id=f"order-2024-{i:04d}-eu-west")
        tasks = [(await client.submit(f"task {i}")).task.task_id for i in range(20)]

    context = await browser.new_context(viewport={"width": 1360, "height": 900})
    await context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = await context.new_page()
    try:
        for fragment, column in (
            ("#/messages", "tr[data-message-id] td:nth-child(2) span.id"),
            ("#/messages", "tr[data-message-id] td:nth-child(8) span.id"),  # conversations
            ("#/tasks", "tr[data-task-id] td:nth-child(1) span.id"),
        ):
            await page.goto(url(console, fragment))
            cells = page.locator(column)
            await expect(cells.first).to_be_visible(timeout=WAIT_MS)
            shown: dict[str, str] = {}
            for cell in await cells.all():
                full = await cell.get_attribute("data-id") or ""
                short = await cell.locator("code").inner_text()
                assert len(short) < len(full), (short, full)
                assert short.strip("…") in full, (short, full)
                shown[full] = short
            assert len(set(shown.values())) == len(shown), f"short forms repeat on {fragment}: {shown}"
        await page.screenshot(path=str(tmp_path / "tasks.png"))

        # the copy button puts the whole id on the clipboard
        row = page.locator(f'tr[data-task-id="{tasks[3]}"]')
        await row.locator("button.copy").first.click()
        await expect(row.locator("button.copy").first).to_have_text("copied")
        assert await page.evaluate("navigator.clipboard.readText()") == tasks[3]
    finally:
        await context.close()
