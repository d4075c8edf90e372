"""The console's JSON API (/api/) and live feed, over real HTTP against a real broker: reads with
filters, the operator's actions, bad input named by field, and who may do what with auth on."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from a2a_broker_client import BrokerClient, Target
from a2a_broker_client.errors import NotFoundError
from a2a_broker_client.models import RetryPolicy

from broker.server import Broker, start_server
from tests.conftest import make_settings

from .security_support import issue

CONSOLE = {"http_address": "127.0.0.1:0", "console_refresh_s": 0.1}


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return CONSOLE


async def call(
    broker: Broker,
    method: str,
    path: str,
    body: Any = None,
    token: str | None = None,
    session: aiohttp.ClientSession | None = None,
    raw: str | None = None,
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    own = session is None
    s = session or aiohttp.ClientSession()
    try:
        kwargs: dict[str, Any] = {"headers": headers}
        if body is not None:
            kwargs["json"] = body
        if raw is not None:
            kwargs["data"] = raw
        async with s.request(method, f"http://{broker.http_address}{path}", **kwargs) as r:
            return r.status, await r.json()
    finally:
        if own:
            await s.close()


async def workload(client: BrokerClient) -> dict[str, str]:
    """Two agents, a dead letter, a pending message, a completed and a failed task."""
    await client.register("orch", capabilities=["plan"])
    await client.register("w1", capabilities=["sum"], max_concurrent_tasks=2)
    await client.send("orch", "w1", b'{"n": 1}', content_type="application/json", conversation_id="c-1")
    dead = (await client.send("orch", "w1", b"\x00\x01binary", conversation_id="c-2")).message_ids[0]
    consumption = client.consume("w1")
    async with consumption:
        stream = aiter(consumption)
        for _ in range(2):
            m = await asyncio.wait_for(anext(stream), 10)
            if m.message_id == dead:
                await consumption.nack(dead, reject=True, reason="cannot parse")
            else:
                await consumption.nack(m.message_id)  # back to pending
    ok = (await client.submit("add", required_capabilities=["sum"])).task.task_id
    bad = (
        await client.submit("divide", required_capabilities=["sum"], retry=RetryPolicy(max_retries=0))
    ).task.task_id
    leased = {a.task.task_id: a for a in await client.claim("w1", max_tasks=2, wait=5)}
    await client.complete(ok, "w1", leased[ok].attempt, b"3")
    await client.fail(bad, "w1", leased[bad].attempt, "division by zero")
    return {"dead": dead, "ok": ok, "bad": bad}


async def test_reads_show_the_workload_with_filters_and_previews(broker):
    async with BrokerClient(broker.address, timeout=10) as client:
        ids = await workload(client)
    status, o = await call(broker, "GET", "/api/overview")
    assert status == 200
    assert o["messages"] == {"ready": 1, "scheduled": 0, "unacked": 0, "dead": 1}
    assert o["tasks"]["completed"] == 1 and o["tasks"]["failed"] == 1
    assert o["agents"]["online"] == 2
    assert o["totals"]["dead_lettered"] == 1 and o["totals"]["completed"] == 1

    status, agents = await call(broker, "GET", "/api/agents?capability=sum")
    assert status == 200, agents
    assert [(a["agent_id"], a["backlog"]) for a in agents["agents"]] == [("w1", 1)]

    _, dead = await call(broker, "GET", "/api/messages?status=failed")
    (d,) = dead["messages"]
    assert d["message_id"] == ids["dead"] and d["last_error"].startswith("cannot parse")
    assert d["payload"]["kind"] == "hex" and d["payload"]["text"].startswith("00 01")
    _, conv = await call(broker, "GET", "/api/messages?conversation_id=c-1")
    (c1,) = conv["messages"]
    assert c1["payload"] == {"kind": "json", "text": '{\n  "n": 1\n}', "size": 8}

    _, failed = await call(broker, "GET", "/api/tasks?status=failed")
    assert [t["task_id"] for t in failed["tasks"]] == [ids["bad"]]
    _, one = await call(broker, "GET", f"/api/tasks/{ids['ok']}")
    assert one["task"]["result"]["text"] == "3"
    assert [h["to_status"] for h in one["history"]] == ["pending", "ready", "running", "completed"]
    _, tree = await call(broker, "GET", f"/api/tasks/{ids['ok']}/tree")
    assert [t["status"] for t in tree["tasks"]] == ["completed"]


async def test_operator_actions_requeue_purge_cancel_retry_and_deregister(broker):
    async with BrokerClient(broker.address, timeout=10) as client:
        ids = await workload(client)
        assert await call(broker, "POST", "/api/messages/requeue", {"message_ids": [ids["dead"]]}) == (
            200,
            {"requeued": 1},
        )
        assert (await client.get_message(ids["dead"])).status.value == "pending"
        _, retried = await call(broker, "POST", f"/api/tasks/{ids['bad']}/retry", {})
        copy = retried["task"]
        assert copy["metadata"] == {"a2a.replay_of": ids["bad"]} and copy["status"] == "ready"
        assert await call(broker, "POST", f"/api/tasks/{copy['task_id']}/cancel", {}) == (
            200,
            {"cancelled_task_ids": [copy["task_id"]]},
        )
        status, body = await call(broker, "POST", f"/api/tasks/{ids['ok']}/retry", {})
        assert status == 409 and "completed" in body["error"]
        assert (await call(broker, "POST", "/api/agents/w1/deregister", {}))[0] == 200
        with pytest.raises(NotFoundError):
            await client.get_agent("w1")
        assert await call(broker, "POST", "/api/messages/purge", {"status": "failed"}) == (200, {"purged": 0})


async def test_bad_input_is_refused_naming_the_field_and_changes_nothing(broker):
    cases = [
        ("GET", "/api/tasks?status=bogus", None, 400, "status: must be one of"),
        ("GET", "/api/messages?page_size=0", None, 400, "page_size: must be between 1 and 500"),
        ("GET", "/api/agents?page_token=%%%", None, 400, "page_token"),
        ("POST", "/api/messages/requeue", {"message_ids": []}, 400, "message_ids: must be a non-empty list"),
        ("POST", "/api/messages/requeue", {"message_ids": ["bad id!"]}, 400, "message_ids[0]: must be"),
        ("POST", "/api/messages/requeue", {"message_ids": ["m_none"]}, 404, "not found"),
        ("POST", "/api/messages/purge", {"older_than_s": -1}, 400, "older_than_s"),
        ("POST", "/api/messages/purge", {"status": "lost"}, 400, "status: must be one of"),
        ("POST", "/api/tasks/t_missing/cancel", {}, 404, "not found"),
        ("GET", "/api/tasks/t_missing", None, 404, "not found"),
        ("POST", "/api/agents/nobody/deregister", {}, 404, "not registered"),
    ]
    for method, path, body, want, text in cases:
        status, answer = await call(broker, method, path, body)
        assert (status, text in answer.get("error", "")) == (want, True), (path, status, answer)
    status, answer = await call(broker, "POST", "/api/messages/purge", raw="status=failed")
    assert status == 415 and "application/json" in answer["error"]
    status, answer = await call(broker, "POST", "/api/messages/purge", raw="[1]", body=None)
    assert status == 415


async def test_the_live_feed_sends_the_overview_again_as_counts_change(broker):
    async with (
        BrokerClient(broker.address, timeout=10) as client,
        aiohttp.ClientSession() as s,
        s.get(f"http://{broker.http_address}/api/events") as r,
    ):
        assert r.headers["Content-Type"].startswith("text/event-stream")
        await client.register("a")

        async def next_overview() -> dict[str, Any]:
            while True:
                line = (await r.content.readline()).decode()
                if line.startswith("data: "):
                    return json.loads(line[6:])

        first = await asyncio.wait_for(next_overview(), 10)
        before = first["totals"]["published"]
        await client.send("a", "a", b"x")

        async def published_grows() -> dict[str, Any]:
            while (o := await next_overview())["totals"]["published"] == before:
                pass
            return o

        later = await asyncio.wait_for(published_grows(), 10)
        assert later["totals"]["published"] == before + 1 and later["messages"]["ready"] == 1


@pytest.fixture
async def token_broker(tmp_path: Path) -> AsyncIterator[Broker]:
    b = await start_server(make_settings(tmp_path, **CONSOLE, auth="token"))
    try:
        yield b
    finally:
        await b.stop(0.2)


async def test_with_auth_the_console_wants_an_admin_or_viewer_and_a_viewer_only_reads(token_broker):
    b = token_broker
    db = b.settings.db
    admin, viewer, agent = issue(db, "ops", "admin"), issue(db, "dash", "viewer"), issue(db, "w1")
    assert (await call(b, "GET", "/api/overview"))[0] == 401
    assert (await call(b, "GET", "/api/overview", token="not-a-token"))[0] == 401
    status, body = await call(b, "GET", "/api/overview", token=agent)
    assert status == 403 and "may not use the console" in body["error"]
    assert (await call(b, "GET", "/api/overview", token=viewer))[0] == 200
    async with (  # a viewer reads /metrics too
        aiohttp.ClientSession() as s,
        s.get(f"http://{b.http_address}/metrics", headers={"Authorization": f"Bearer {viewer}"}) as r,
    ):
        assert r.status == 200
    status, body = await call(b, "POST", "/api/messages/requeue", {"message_ids": ["m_x"]}, token=viewer)
    assert status == 403 and "viewer" in body["error"]
    status, _ = await call(b, "POST", "/api/messages/purge", {}, token=admin)
    assert status == 200
    # a session cookie from a token, then signed out (unsafe: aiohttp keeps no cookie of an IP else)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
        assert (await call(b, "POST", "/api/session", {"token": "wrong"}, session=s))[0] == 401
        assert (await call(b, "POST", "/api/session", {"token": agent}, session=s))[0] == 403
        async with s.post(f"http://{b.http_address}/api/session", json={"token": viewer}) as r:
            who = await r.json()
            assert (r.status, who["role"], who["subject"]) == (200, "viewer", "dash")
            set_cookie = r.headers["Set-Cookie"]
        assert "a2a_console=" in set_cookie and "HttpOnly" in set_cookie
        assert "samesite=strict" in set_cookie.lower()
        assert (await call(b, "GET", "/api/tasks", session=s))[0] == 200
        assert (await call(b, "GET", "/api/session", session=s))[1]["role"] == "viewer"
        assert (await call(b, "DELETE", "/api/session", session=s))[0] == 200
        assert (await call(b, "GET", "/api/tasks", session=s))[0] == 401


async def test_subscriptions_and_subject_messages_with_their_backlog(broker):
    async with BrokerClient(broker.address, timeout=10) as client:
        await client.register("pub")
        await client.create_subscription("eu", "orders.eu.*")
        await client.create_subscription("all", "orders.>")
        sent = await client.send("pub", Target.to_subject("orders.eu.created"), {"n": 1})
        await client.send("pub", Target.to_subject("orders.us.created"), {"n": 2})
    status, subs = await call(broker, "GET", "/api/subscriptions?page_size=1")
    assert status == 200, subs
    (first,) = subs["subscriptions"]
    assert (first["name"], first["filter"], first["backlog"], first["in_flight"]) == ("all", "orders.>", 2, 0)
    assert first["oldest_unacked_age_ms"] >= 0 and subs["next_page_token"]
    _, rest = await call(broker, "GET", f"/api/subscriptions?page_token={subs['next_page_token']}")
    assert [(s["name"], s["backlog"]) for s in rest["subscriptions"]] == [("eu", 1)]
    assert not rest["next_page_token"]
    _, eu = await call(broker, "GET", "/api/messages?subscription=eu")
    assert [(m["subject"], m["subscription"], m["status"]) for m in eu["messages"]] == [
        ("orders.eu.created", "eu", "pending")
    ]
    _, by_subject = await call(broker, "GET", "/api/messages?subject=orders.eu.created")
    assert [m["message_id"] for m in by_subject["messages"]] == list(sent.message_ids)
