"""#22.12: what an operator expects of the console, in a real Chromium: sessions and a session's
page (the session field a link), an agent's page, deregistering offline agents, each attempt of a
task, the rate chart's axes, the task latency panels, search by id, and sending a message."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from a2a_broker_client import BrokerClient, Target
from a2a_broker_client.models import RetryPolicy, TaskSpec
from playwright.async_api import Browser, Page, expect

from broker.server import Broker
from tests.conftest import eventually
from tests.integration.security_support import issue

from .console_support import WAIT_MS, dead_letter, serving, sign_in, url

# Under pytest -n (make test) one Chromium at a time: the browser tests run on one worker.
pytestmark = pytest.mark.xdist_group("browser")


def accept_dialogs(page: Page) -> None:
    page.on("dialog", lambda d: asyncio.ensure_future(d.accept()))


async def test_sessions_are_listed_and_a_tasks_session_links_to_its_page(console, page, tmp_path):
    async with BrokerClient(console.address, timeout=10) as client:
        await client.register("w1")
        s = await client.create_session("quarterly report", initiated_by="planner")
        await client.create_session("another")
        done = (await client.submit(TaskSpec("gather figures", session_id=s.session_id))).task.task_id
        await client.submit(TaskSpec("write summary", session_id=s.session_id))
        (lease,) = await client.claim("w1", wait=5)
        assert lease.task.task_id == done
        await client.complete(done, "w1", lease.attempt, b"ok")

    await page.goto(url(console, "#/tasks"))
    link = page.locator(f'tr[data-task-id="{done}"] td[data-session] a')
    await link.click(timeout=WAIT_MS)
    await expect(page).to_have_url(re.compile(f"#/sessions/{s.session_id}$"))
    await expect(page.locator("h1")).to_contain_text("quarterly report", timeout=WAIT_MS)
    await expect(page.locator("h1 .badge")).to_have_text("active")
    await expect(page.locator("[data-counts]")).to_have_attribute("data-counts", '{"completed":1,"ready":1}')
    await expect(page.locator("tr[data-task-id]")).to_have_count(2)
    await expect(page.locator('[data-fact="Initiated by"]')).to_have_text("planner")
    await expect(page.locator('[data-fact="Progress"]')).to_contain_text("50% finished")
    await page.screenshot(path=str(tmp_path / "session.png"), full_page=True)

    await page.goto(url(console, "#/sessions"))
    rows = page.locator("tr[data-session-id]")
    await expect(rows).to_have_count(2, timeout=WAIT_MS)
    await expect(rows.first).to_contain_text("another")  # newest first
    await rows.nth(1).locator("span.id a").click()
    await expect(page.locator("h1")).to_contain_text("quarterly report", timeout=WAIT_MS)


async def test_an_agents_page_shows_what_it_holds_its_streams_record_and_failures(console, page, tmp_path):
    async with BrokerClient(console.address, timeout=10) as client:
        await client.register("orch")
        await client.register("w1", capabilities=["sum"], max_concurrent_tasks=3)
        ok = (await client.submit("add", required_capabilities=["sum"])).task.task_id
        bad = (
            await client.submit("divide", required_capabilities=["sum"], retry=RetryPolicy(max_retries=0))
        ).task.task_id
        held = (await client.submit("long sum", required_capabilities=["sum"])).task.task_id
        leases = {a.task.task_id: a for a in await client.claim("w1", max_tasks=3, wait=5)}
        await client.complete(ok, "w1", leases[ok].attempt, b"3")
        await client.fail(bad, "w1", leases[bad].attempt, "division by zero")
        dead = await dead_letter(client, "w1", b"garbled")
        unacked = (await client.send("orch", "w1", b"in hand")).message_ids[0]
        consumption = client.consume("w1")
        async with consumption:  # open, holding one message unacknowledged
            got = await asyncio.wait_for(anext(aiter(consumption)), 10)
            assert got.message_id == unacked

            await page.goto(url(console, "#/agents"))
            await page.locator('tr[data-agent-id="w1"] span.id a').click(timeout=WAIT_MS)
            await expect(page).to_have_url(re.compile("#/agents/w1$"))
            await expect(page.locator("[data-open-streams]")).to_have_attribute("data-open-streams", "1")
            held_rows = page.locator('[data-section="held-tasks"] tr[data-task-id]')
            await expect(held_rows).to_have_count(1)
            await expect(held_rows.first).to_have_attribute("data-task-id", held)
            unacked_rows = page.locator('[data-section="unacked"] tr[data-message-id]')
            await expect(unacked_rows).to_have_count(1)
            await expect(unacked_rows.first).to_have_attribute("data-message-id", unacked)
            await expect(page.locator("[data-record-completed]")).to_have_text("1")
            await expect(page.locator("[data-record-failed]")).to_have_text("1")
            await expect(page.locator("[data-success-rate]")).to_have_text("50%")
            failed = page.locator(f'[data-section="failed-tasks"] tr[data-task-id="{bad}"]')
            await expect(failed).to_contain_text("division by zero")
            letter = page.locator(f'[data-section="dead-letters"] tr[data-message-id="{dead}"]')
            await expect(letter).to_contain_text("malformed order")
            await page.screenshot(path=str(tmp_path / "agent.png"), full_page=True)


@pytest.fixture
async def lively_console(tmp_path: Path) -> AsyncIterator[Broker]:
    """Agents go offline after 0.3 s of silence; the retention is the default (a week)."""
    async with serving(tmp_path, heartbeat_interval_s=0.1, liveness_timeout_s=0.3) as b:
        yield b


async def test_offline_agents_are_deregistered_from_the_page(lively_console, page):
    b = lively_console
    async with BrokerClient(b.address, timeout=10) as client:
        for agent_id in ("gone-1", "gone-2", "alive"):
            await client.register(agent_id)

        async def beat() -> None:
            while True:
                await client.heartbeat("alive")
                await asyncio.sleep(0.05)

        beating = asyncio.ensure_future(beat())
        try:

            async def both_offline() -> bool:
                agents = await client.list_agents(status="offline")
                return {a.agent_id for a in agents.items} == {"gone-1", "gone-2"}

            await eventually(both_offline, what="two agents offline")
            accept_dialogs(page)
            await page.goto(url(b, "#/agents"))
            row = page.locator('tr[data-agent-id="gone-1"]')
            await expect(row.locator(".badge")).to_have_text("offline", timeout=WAIT_MS)
            await row.locator('[data-action="deregister"]').click()
            await expect(row).to_have_count(0, timeout=WAIT_MS)
            await expect(page.locator('tr[data-agent-id="gone-2"]')).to_have_count(1)
            await page.locator('[data-action="deregister-offline"]').click()
            await expect(page.locator(".notice")).to_have_text("Deregistered 1 offline agent(s).")
            await expect(page.locator("tr[data-agent-id]")).to_have_count(1, timeout=WAIT_MS)
            await expect(page.locator("tr[data-agent-id]")).to_have_attribute("data-agent-id", "alive")
            listed = await client.list_agents()
            assert [a.agent_id for a in listed.items] == ["alive"]
        finally:
            beating.cancel()


async def test_a_tasks_page_shows_each_attempt_with_duration_error_and_lease_expiry(console, page, tmp_path):
    async with BrokerClient(console.address, timeout=10) as client:
        await client.register("w1")
        spec = TaskSpec("flaky", lease_timeout=1.0, retry=RetryPolicy(max_retries=2, initial_backoff=0.01))
        task_id = (await client.submit(spec)).task.task_id
        (first,) = await client.claim("w1", wait=5)
        await client.fail(task_id, "w1", first.attempt, "boom: the disk is full")
        (second,) = await client.claim("w1", wait=5)  # its lease lapses: nobody extends it
        assert second.attempt == 2
        (third,) = await client.claim("w1", wait=5)  # once the second lease expired
        assert third.attempt == 3
        running = await client.get_task(task_id)
        assert running.lease_expires_at is not None
        expires_ms = running.lease_expires_at.timestamp() * 1000

    await page.goto(url(console, f"#/tasks/{task_id}"))
    rows = page.locator('[data-section="attempts"] tr[data-attempt]')
    await expect(rows).to_have_count(3, timeout=WAIT_MS)
    one, two, three = rows.nth(0), rows.nth(1), rows.nth(2)
    await expect(one).to_have_attribute("data-outcome", "retried")
    await expect(one).to_contain_text("boom: the disk is full")
    await expect(one.locator("[data-lease-expired]")).to_have_count(0)
    await expect(two).to_have_attribute("data-outcome", "retried")
    await expect(two.locator("[data-lease-expired]")).to_have_text("lease expired")
    await expect(two).to_contain_text("lease of agent w1 expired")
    for row in (one, two):
        ms = float(await row.locator("[data-duration]").get_attribute("data-duration") or "nan")
        assert ms >= 0
    two_ms = float(await two.locator("[data-duration]").get_attribute("data-duration") or "0")
    assert two_ms >= 1000  # it ran until its 1 s lease lapsed
    await expect(three).to_have_attribute("data-outcome", "running")
    shown = float(await three.locator("[data-lease-expires]").get_attribute("data-lease-expires") or "0")
    assert abs(shown - expires_ms) <= 1
    await expect(three.locator("[data-lease-expires]")).not_to_have_text("")
    await page.screenshot(path=str(tmp_path / "attempts.png"), full_page=True)


@pytest.fixture
async def sampling_console(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Broker]:
    """The rate chart sampled every 0.1 s instead of 5 s."""
    monkeypatch.setattr("broker.console.api.SAMPLE_S", 0.1)
    async with serving(tmp_path) as b:
        yield b


async def test_the_rate_chart_has_axes_with_rates_and_times_of_day(sampling_console, page, tmp_path):
    async with BrokerClient(sampling_console.address, timeout=10) as client:
        await client.register("a")
        for _ in range(5):
            await client.send("a", "a", b"x")
    await page.goto(url(sampling_console))
    chart = page.locator("svg.chart")
    await expect(chart).not_to_have_attribute("data-points", re.compile("^[01]$"), timeout=WAIT_MS)
    await expect(chart.locator(".axis.x text[data-t]")).to_have_count(5)
    drawn = await page.evaluate(  # one drawing (the overview is redrawn live)
        """() => { const c = document.querySelector('svg.chart');
             const x = [...c.querySelectorAll('.axis.x text[data-t]')];
             return {x: x.map((t) => [t.textContent, +t.dataset.t]),
                     y: [...c.querySelectorAll('.axis.y text')].map((t) => t.textContent)}; }"""
    )
    labels, stamps = [t for t, _ in drawn["x"]], [at for _, at in drawn["x"]]
    assert all(re.fullmatch(r"\d\d:\d\d:\d\d", t) for t in labels), labels
    assert stamps == sorted(stamps) and stamps[0] < stamps[-1]
    rates = drawn["y"]
    assert rates[0] == "0" and "per second" in rates and len(rates) >= 3, rates
    await expect(chart.locator(".axis.x")).to_contain_text("time (last")
    await page.screenshot(path=str(tmp_path / "chart.png"))


def seconds(text: str) -> float:
    value, unit = re.fullmatch(r"(?:> )?([\d.]+) (ms|s)", text.strip()).groups()  # type: ignore[union-attr]
    return float(value) / (1000 if unit == "ms" else 1)


async def test_latency_panels_show_p50_and_p99_of_queue_wait_and_run_time(console, page, tmp_path):
    async with BrokerClient(console.address, timeout=10) as client:
        await client.register("w1", max_concurrent_tasks=4)
        ids = [(await client.submit(f"job {i}")).task.task_id for i in range(4)]
        leases = await client.claim("w1", max_tasks=4, wait=5)
        await asyncio.sleep(0)  # (no timing assumed: any run time is shown)
        for a in leases:
            await client.complete(a.task.task_id, "w1", a.attempt, b"")
    assert {a.task.task_id for a in leases} == set(ids)
    await page.goto(url(console))
    for key in ("queue_wait", "run_time"):
        panel = page.locator(f'[data-latency="{key}"]')
        for window in ("all", "recent"):
            row = panel.locator(f'tr[data-window="{window}"]')
            await expect(row.locator("[data-n]")).to_have_text("4", timeout=WAIT_MS)
            p50 = seconds(await row.locator("[data-p50]").inner_text())
            p99 = seconds(await row.locator("[data-p99]").inner_text())
            assert 0 < p50 <= p99 < 10, (key, window, p50, p99)
    await page.screenshot(path=str(tmp_path / "latency.png"))  # (the overview is redrawn live)


async def test_search_finds_a_task_a_message_an_agent_and_a_session_by_id(console, page):
    async with BrokerClient(console.address, timeout=10) as client:
        await client.register("orch")
        await client.register("w1")
        task_id = (await client.submit("needle")).task.task_id
        message_id = (await client.send("orch", "w1", b"hay")).message_ids[0]
        session_id = (await client.create_session("haystack")).session_id
    await page.goto(url(console, "#/tasks"))
    await expect(page.locator("h1")).to_have_text("Tasks", timeout=WAIT_MS)
    box = page.locator("#search input")
    for wanted, fragment, heading in (
        (task_id, f"#/tasks/{task_id}", "needle"),
        (message_id, f"#/messages/{message_id}", message_id),
        ("w1", "#/agents/w1", "w1"),
        (session_id, f"#/sessions/{session_id}", "haystack"),
    ):
        await box.fill(f" {wanted} ")
        await box.press("Enter")
        await expect(page).to_have_url(re.compile(re.escape(fragment) + "$"), timeout=WAIT_MS)
        await expect(page.locator("h1")).to_contain_text(heading)
    await box.fill("t-nothing-has-this-id")
    await box.press("Enter")
    await expect(page.locator("#search-error")).to_contain_text(
        "no task, message, agent or session has the id 't-nothing-has-this-id'"
    )


async def test_an_admin_sends_a_message_from_the_form(console, page, tmp_path):
    async with BrokerClient(console.address, timeout=10) as client:
        await client.register("orch")
        await client.register("w1")
        consumption = client.consume("w1")
        async with consumption:
            await consumption.wait_live()
            await page.goto(url(console, "#/messages"))
            await page.locator('[data-panel="send"] summary').click(timeout=WAIT_MS)
            form = page.locator('form[data-form="send"]')
            await form.locator('input[name="sender_id"]').fill("orch")
            await form.locator('input[name="recipient_id"]').fill("w1")
            await form.locator('input[name="message_type"]').fill("greeting")
            await form.locator('textarea[name="payload"]').fill('{"hello": "w1"')  # not JSON
            await form.locator('button[type="submit"]').click()
            await expect(form.locator(".error")).to_contain_text("payload: is not JSON")
            await form.locator('textarea[name="payload"]').fill('{"hello": "w1"}')
            await form.locator('button[type="submit"]').click()
            sent = form.locator("a[data-sent]")
            await expect(sent).to_have_count(1, timeout=WAIT_MS)
            await page.screenshot(path=str(tmp_path / "send.png"), full_page=True)
            message_id = await sent.get_attribute("data-sent")
            got = await asyncio.wait_for(anext(aiter(consumption)), 10)
            assert (got.message_id, got.sender_id, got.message_type) == (message_id, "orch", "greeting")
            assert got.payload == b'{"hello": "w1"}' and got.content_type == "application/json"
            assert got.headers["console-sent-by"] == "-"  # --auth none: no name
            await consumption.ack(got.message_id)


async def test_a_viewer_has_no_send_form_and_cannot_send(token_console, browser: Browser):
    b = token_console
    viewer_token = issue(b.settings.db, "dash", "viewer")
    page = await (await browser.new_context()).new_page()
    await sign_in(page, b, viewer_token)
    await expect(page.locator("#who")).to_contain_text("dash (viewer)", timeout=WAIT_MS)
    await page.goto(url(b, "#/messages"))
    await expect(page.locator("h1")).to_have_text("Messages", timeout=WAIT_MS)
    assert await page.locator('[data-panel="send"]').count() == 0
    status = await page.evaluate(
        """fetch('/api/messages/send', {method: 'POST', headers: {'Content-Type': 'application/json'},
             body: JSON.stringify({sender_id: 'orch', recipient_id: 'w1', payload: '{}'})})
           .then(r => r.status)"""
    )
    assert status == 403


async def test_subscriptions_show_their_backlog_and_link_to_their_deliveries(console, page, tmp_path):
    async with BrokerClient(console.address, timeout=10) as client:
        await client.register("shop")
        await client.create_subscription("billing", "orders.>")
        await client.create_subscription("audit", "audit.*")
        for n in range(3):
            await client.send("shop", Target.to_subject("orders.eu.created"), {"n": n})

    await page.goto(url(console, "#/subscriptions"))
    billing = page.locator('tr[data-subscription="billing"]')
    await expect(billing.locator('[data-figure="backlog"]')).to_have_text("3", timeout=WAIT_MS)
    await expect(billing.locator('[data-figure="oldest"]')).to_contain_text(" s")
    await expect(page.locator('tr[data-subscription="audit"] [data-figure="backlog"]')).to_have_text("0")
    await page.screenshot(path=str(tmp_path / "subscriptions.png"), full_page=True)
    await billing.locator("td a").first.click()
    await expect(page).to_have_url(re.compile("#/messages\\?subscription=billing$"))
    rows = page.locator("tr[data-message-id]")
    await expect(rows).to_have_count(3, timeout=WAIT_MS)
    await expect(rows.first).to_contain_text("orders.eu.created (billing)")
