"""The web console in a real headless Chromium (Debian's ``chromium``, driven by Playwright through
``executable_path``; ``make test`` installs the browser when it is missing): counts of a scripted
workload, a live update without reload, a dead letter requeued from the page reaching its
subscriber, a task tree drawn with the right statuses, and sign-in with auth on (a viewer cannot
requeue). Screenshots are saved in each test's temporary directory."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from a2a_broker_client import BrokerClient
from a2a_broker_client.models import GraphNode, RetryPolicy, TaskSpec
from playwright.async_api import Page, expect

from tests.integration.security_support import issue

from .console_support import WAIT_MS, count, dead_letter, sign_in, url

# Under pytest -n (make test) one Chromium at a time: the browser tests run on one worker.
pytestmark = pytest.mark.xdist_group("browser")


async def test_the_overview_shows_the_counts_of_a_scripted_workload(console, page, tmp_path):
    async with BrokerClient(console.address, timeout=10) as client:
        await client.register("orch")
        await client.register("w1", capabilities=["sum"], max_concurrent_tasks=3)
        await client.register("w2", capabilities=["sum"])
        for i in range(3):
            await client.send("orch", "w2", f"job {i}".encode())
        await dead_letter(client, "w1", b"bad")
        ok = [(await client.submit(f"add {i}", required_capabilities=["sum"])).task.task_id for i in range(2)]
        bad = (
            await client.submit("div", required_capabilities=["sum"], retry=RetryPolicy(max_retries=0))
        ).task
        await client.submit("waits", required_capabilities=["nobody-has-this"])
        leased = {a.task.task_id: a for a in await client.claim("w1", max_tasks=3, wait=5)}
        for task_id in ok:
            await client.complete(task_id, "w1", leased[task_id].attempt, b"ok")
        await client.fail(bad.task_id, "w1", leased[bad.task_id].attempt, "division by zero")

    await page.goto(url(console))
    await count(page, "agents.online", 3)
    await count(page, "messages.ready", 3)
    await count(page, "messages.unacked", 0)
    await count(page, "messages.dead", 1)
    await count(page, "tasks.completed", 2)
    await count(page, "tasks.failed", 1)
    await count(page, "tasks.ready", 1)
    await count(page, "tasks.running", 0)
    await page.screenshot(path=str(tmp_path / "overview.png"), full_page=True)

    # shareable URLs: the failed tasks' list, from the address alone
    await page.goto(url(console, "#/tasks?status=failed"))
    rows = page.locator("tr[data-task-id]")
    await expect(rows).to_have_count(1, timeout=WAIT_MS)
    await expect(rows.first).to_contain_text("division by zero")


async def test_a_live_update_appears_without_reload(console, page):
    async with BrokerClient(console.address, timeout=10) as client:
        await client.register("orch")
        await client.register("w1")
        await page.goto(url(console))
        await count(page, "messages.ready", 0)
        await page.evaluate("window.__same_page = 42")
        await client.send("orch", "w1", b"news")
        await count(page, "messages.ready", 1)
        await client.register("w2")
        await count(page, "agents.online", 3)
        assert await page.evaluate("window.__same_page") == 42  # updated in place, not reloaded
        await expect(page.locator("#live")).to_have_class("live on")


async def test_a_dead_letter_is_requeued_from_the_page_and_reaches_its_subscriber(console, page, tmp_path):
    async with BrokerClient(console.address, timeout=10) as client:
        await client.register("orch")
        await client.register("w1")
        mid = await dead_letter(client, "w1", b'{"order": 7}')
        consumption = client.consume("w1")
        async with consumption:
            await consumption.wait_live()
            await page.goto(url(console, "#/messages?status=failed"))
            row = page.locator(f'tr[data-message-id="{mid}"]')
            await expect(row).to_contain_text("malformed order", timeout=WAIT_MS)
            await row.locator("summary").click()
            await expect(row.locator("pre.preview")).to_have_text('{\n  "order": 7\n}')
            await page.screenshot(path=str(tmp_path / "dead-letters.png"), full_page=True)
            await row.locator('input[type="checkbox"]').check()
            await page.locator('[data-action="requeue"]').click()
            await expect(page.locator(".notice")).to_have_text("Requeued 1 message(s).", timeout=WAIT_MS)
            got = await asyncio.wait_for(anext(aiter(consumption)), 10)
            assert got.message_id == mid and got.payload == b'{"order": 7}'
            assert await consumption.ack(mid) == 1


async def test_a_task_tree_renders_with_the_right_statuses(console, page, tmp_path):
    async with BrokerClient(console.address, timeout=10) as client:
        await client.register("w1", capabilities=["sum"], max_concurrent_tasks=4)
        graph = await client.submit_graph(
            [
                GraphNode("root", TaskSpec("plan the report", required_capabilities=["editor"])),
                GraphNode("a", TaskSpec("gather", required_capabilities=["sum"]), parent_key="root"),
                GraphNode(
                    "b",
                    TaskSpec("compute", required_capabilities=["sum"], retry=RetryPolicy(max_retries=0)),
                    parent_key="root",
                ),
                GraphNode(
                    "c",
                    TaskSpec("draft", required_capabilities=["sum"]),
                    parent_key="root",
                    depends_on_keys=["a"],
                ),
                GraphNode(
                    "d",
                    TaskSpec("review", required_capabilities=["sum"]),
                    parent_key="c",
                    depends_on_keys=["c"],
                ),
            ]
        )
        ids = graph.task_ids
        leased = {a.task.task_id: a for a in await client.claim("w1", max_tasks=4, wait=5)}
        assert set(leased) == {ids["a"], ids["b"]}
        await client.complete(ids["a"], "w1", leased[ids["a"]].attempt, b"facts")
        await client.fail(ids["b"], "w1", leased[ids["b"]].attempt, "no data")
        (c_lease,) = await client.claim("w1", wait=5)
        assert c_lease.task.task_id == ids["c"]  # running; d waits on it (blocked)
        expected = {tid: (await client.get_task(tid)).status.value for tid in ids.values()}
        assert sorted(expected.values()) == ["blocked", "completed", "failed", "ready", "running"]

        await page.goto(url(console, f"#/tasks/{ids['c']}"))
        nodes = page.locator("svg.tree g.node")
        await expect(nodes).to_have_count(5, timeout=WAIT_MS)
        for task_id, status in expected.items():
            await expect(page.locator(f'svg.tree g[data-task-id="{task_id}"]')).to_have_attribute(
                "data-status", status
            )
        await expect(page.locator("svg.tree g.node.current")).to_have_attribute("data-task-id", ids["c"])
        history = await client.get_history(ids["c"])  # pending, blocked, ready (after a), running
        await expect(page.locator("ol.timeline li")).to_have_count(len(history))
        await page.screenshot(path=str(tmp_path / "task-tree.png"), full_page=True)

        # live: completing c moves it, and unblocks d, on the open page
        await client.complete(ids["c"], "w1", c_lease.attempt, b"draft")
        await expect(page.locator(f'svg.tree g[data-task-id="{ids["c"]}"]')).to_have_attribute(
            "data-status", "completed", timeout=WAIT_MS
        )
        await expect(page.locator(f'svg.tree g[data-task-id="{ids["d"]}"]')).to_have_attribute(
            "data-status", "ready", timeout=WAIT_MS
        )


async def test_with_auth_the_console_refuses_without_a_token_and_a_viewer_cannot_requeue(
    token_console, browser, tmp_path
):
    b = token_console
    db = b.settings.db
    admin_token, viewer_token, agent_token = (
        issue(db, "ops", "admin"),
        issue(db, "dash", "viewer"),
        issue(db, "w1"),
    )
    async with BrokerClient(b.address, timeout=10, token=admin_token) as client:
        await client.register("orch")
        await client.register("w1")
        await dead_letter(client, "w1", b"x")

    async def fresh() -> Page:
        return await (await browser.new_context()).new_page()

    # no token: the sign-in form, and the data stays behind it
    anonymous = await fresh()
    await anonymous.goto(url(b))
    await expect(anonymous.locator("form.login")).to_be_visible(timeout=WAIT_MS)
    assert await anonymous.locator("[data-count]").count() == 0
    status = await anonymous.evaluate("fetch('/api/overview').then(r => r.status)")
    assert status == 401
    # an agent's token is refused
    await sign_in(anonymous, b, agent_token)
    await expect(anonymous.locator("form.login .error")).to_contain_text("may not use the console")
    await anonymous.screenshot(path=str(tmp_path / "sign-in.png"))

    viewer = await fresh()
    await sign_in(viewer, b, viewer_token)
    await count(viewer, "messages.dead", 1)
    await expect(viewer.locator("#who")).to_contain_text("dash (viewer)")
    await viewer.goto(url(b, "#/messages?status=failed"))
    await expect(viewer.locator("tr[data-message-id]")).to_have_count(1, timeout=WAIT_MS)
    assert await viewer.locator('[data-action="requeue"]').count() == 0  # no button for a viewer
    refused: dict[str, Any] = await viewer.evaluate(
        """fetch('/api/messages/requeue', {
             method: 'POST', headers: {'Content-Type': 'application/json'},
             body: JSON.stringify({message_ids: ['m_x']}),
           }).then(async r => ({status: r.status, body: await r.json()}))"""
    )
    assert refused["status"] == 403 and "viewer" in refused["body"]["error"]

    admin = await fresh()
    await sign_in(admin, b, admin_token)
    await admin.goto(url(b, "#/messages?status=failed"))
    await expect(admin.locator('[data-action="requeue"]')).to_have_count(1, timeout=WAIT_MS)
