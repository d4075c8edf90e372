"""The console's inputs in a real headless Chromium (as tests/e2e/test_console_browser.py): the purge
box takes durations as the command line does (issue 22.5), and the sign-in box shows the tokens'
form (issue 22.7)."""

from __future__ import annotations

import pytest
from a2a_broker_client import BrokerClient
from playwright.async_api import expect

from tests.integration.security_support import issue

from .console_support import WAIT_MS, dead_letter, url

pytestmark = pytest.mark.xdist_group("browser")  # one Chromium at a time under pytest -n


async def test_the_purge_box_takes_durations_as_the_command_line_does(console, page):
    async with BrokerClient(console.address, timeout=10) as client:
        await client.register("orch")
        await client.register("w1")
        await dead_letter(client, "w1", b"x")
        page.on("dialog", lambda dialog: dialog.accept())
        await page.goto(url(console, "#/messages?status=failed"))
        await expect(page.locator("tr[data-message-id]")).to_have_count(1, timeout=WAIT_MS)
        older = page.get_by_placeholder("older than")

        await older.fill("1y")
        await page.locator('[data-action="purge"]').click()
        await expect(page.locator(".error")).to_contain_text('not a duration: "1y"', timeout=WAIT_MS)
        for text, purged in (("7d", 0), ("0s", 1)):  # the dead letter is younger than 7 days
            await older.fill(text)
            async with page.expect_response("**/api/messages/purge") as response:
                await page.locator('[data-action="purge"]').click()
            assert (await (await response.value).json())["purged"] == purged, text
        assert (await client.list_messages(status="failed")).items == []


async def test_the_sign_in_box_shows_the_form_of_a_token(token_console, page):
    token = issue(token_console.settings.db, "ops", "admin")  # a2a.<id>.<secret>
    await page.goto(url(token_console))
    box = page.locator('form.login input[name="token"]')
    await expect(box).to_be_visible(timeout=WAIT_MS)
    placeholder = await box.get_attribute("placeholder") or ""
    prefix = token.split(".")[0] + "."
    assert placeholder.startswith(prefix), (placeholder, token[:8])
