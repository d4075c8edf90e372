"""Who may do what through the broker's MCP server, with ``--auth token``: each tool call is made
with the caller's own token (the HTTP request's ``Authorization: Bearer``, or ``a2a-broker mcp
--token``), so the broker's policy applies as on gRPC: no token, an agent token, a viewer token, an
orchestrator token. Over streamable HTTP and stdio, with the MCP SDK's own client; and over HTTPS
with mutual TLS, where the broker calls itself without a certificate of its own."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from a2a_broker_client import BrokerClient
from mcp.shared.exceptions import MCPError

from broker.server import Broker, start_server
from tests.conftest import make_settings
from tests.integration.mcp_support import (
    CLIENT_NAME,
    RAW_HEADERS,
    RAW_INITIALIZE,
    SESSIONS,
    WORKER,
    call,
    http_session,
    ok,
    refused,
    submit,
    text,
    until_running,
    worker_process,
)
from tests.integration.security_support import issue
from tests.integration.test_http_tls import trusting
from tests.integration.tls_support import CA, write_server_files

ROLES = {
    "admin": ("ops", "admin"),
    "orchestrator": ("planner", "orchestrator"),
    "agent": ("agent-a", "agent"),
    "viewer": ("watcher", "viewer"),
    "worker": (WORKER, "agent"),
}


@pytest.fixture
async def secured(tmp_path: Path) -> AsyncIterator[tuple[Broker, dict[str, str]]]:
    settings = make_settings(tmp_path, auth="token", http_address="127.0.0.1:0", access_log=True)
    b = await start_server(settings)
    try:
        tokens = {name: issue(settings.db, subject, role) for name, (subject, role) in ROLES.items()}
        async with worker_process(b.address, token=tokens["worker"], admin_token=tokens["admin"]):
            yield b, tokens
    finally:
        await b.stop(0.2)


@pytest.fixture
async def admin(secured: tuple[Broker, dict[str, str]]) -> AsyncIterator[BrokerClient]:
    b, tokens = secured
    async with BrokerClient(b.address, token=tokens["admin"]) as c:
        yield c


@pytest.fixture(params=["http", "stdio"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_without_a_token_only_what_an_unauthenticated_caller_may_do(transport, secured, admin):
    b, _ = secured
    async with SESSIONS[transport](b) as mcp:
        assert len((await mcp.list_tools()).tools) == 14  # the MCP surface itself is no broker data
        for tool, args in [
            ("list_capabilities", {}),
            ("list_agents", {}),
            ("submit_task", {"title": "sneaky"}),
            ("create_session", {"name": "sneaky"}),
            ("send_message", {"sender_id": WORKER, "to": WORKER, "payload": "hi"}),
        ]:
            message = await refused(mcp, tool, **args)
            assert "UNAUTHENTICATED" in message and "token" in message, message
        with pytest.raises(MCPError, match="UNAUTHENTICATED"):
            await mcp.read_resource("agents://")
        with pytest.raises(MCPError, match="UNAUTHENTICATED"):
            async with mcp.listen(resource_subscriptions=["agents://"]):
                pass
    assert (await admin.list_tasks()).items == [] and (await admin.list_sessions()).items == []
    assert (await admin.list_messages()).items == []


async def test_an_agent_token_acts_only_as_its_own_agent(transport, secured, admin):
    b, tokens = secured
    for agent_id in ("agent-a", "agent-b"):
        await admin.register(agent_id)
    async with SESSIONS[transport](b, tokens["agent"]) as mcp:
        assert {a["agent_id"] for a in (await ok(mcp, "list_agents"))["agents"]} >= {"agent-a", WORKER}
        sent = await ok(mcp, "send_message", sender_id="agent-a", to=WORKER, payload="from a")
        assert len(sent["message_ids"]) == 1
        message = await refused(mcp, "send_message", sender_id="agent-b", to=WORKER, payload="as b")
        assert "PERMISSION_DENIED" in message
        message = await refused(
            mcp, "read_conversation", conversation_id=sent["conversation_id"], as_agent="agent-b"
        )
        assert "PERMISSION_DENIED" in message
        assert "PERMISSION_DENIED" in await refused(mcp, "submit_task", title="not an orchestrator's")
    assert (await admin.list_messages(sender_id="agent-b")).items == []
    assert (await admin.list_tasks()).items == []


async def test_a_viewer_token_cannot_change_anything(transport, secured, admin):
    b, tokens = secured
    held = (await admin.submit("held", required_capabilities=["text"], payload={"op": "hold"})).task.task_id
    session = await admin.create_session("kept")
    await admin.register("someone")
    async with SESSIONS[transport](b, tokens["viewer"]) as mcp:
        for tool, args in [
            ("submit_task", {"title": "x"}),
            ("submit_graph", {"nodes": [{"key": "a", "title": "x"}]}),
            ("cancel_task", {"task_id": held}),
            ("retry_task", {"task_id": held}),
            ("create_session", {"name": "x"}),
            ("close_session", {"session_id": session.session_id}),
            ("send_message", {"sender_id": "someone", "to": WORKER, "payload": "x"}),
            ("get_task", {"task_id": held}),  # a viewer reads the console, not the API
        ]:
            assert "PERMISSION_DENIED" in await refused(mcp, tool, **args), tool
    assert [t.task_id for t in (await admin.list_tasks()).items] == [held]
    assert (await admin.get_task(held)).status.value in ("ready", "running")
    assert (await admin.get_session(session.session_id)).status.value == "active"
    assert (await admin.list_messages()).items == []


async def test_an_orchestrator_token_is_the_subject_of_every_call(transport, secured, caplog):
    caplog.set_level(logging.INFO, logger="broker.access")
    b, tokens = secured
    async with SESSIONS[transport](b, tokens["orchestrator"]) as mcp:
        task_id = await submit(mcp, "upper", text="mine")
        done = await ok(mcp, "wait_for_task", task_id=task_id, timeout_s=30)
        assert done["task"]["result"] == {"text": "MINE"}
        held = await submit(mcp, "hold")
        await until_running(mcp, held)
        assert (await ok(mcp, "cancel_task", task_id=held))["cancelled_task_ids"] == [held]
    rpc = [r for r in caplog.records if r.name == "broker.access" and r.getMessage() == "rpc"]
    submits = [r for r in rpc if r.method.endswith("/Submit")]
    assert len(submits) == 2
    assert all(r.subject == "planner" and r.client == f"a2a-broker-mcp ({CLIENT_NAME})" for r in submits)


async def test_a_2025_session_stays_with_the_token_that_opened_it(secured):
    b, tokens = secured
    url, base, init = f"{b.http_url}/mcp", RAW_HEADERS, RAW_INITIALIZE
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    async with httpx.AsyncClient(timeout=10) as http:
        opened = await http.post(
            url, json=init, headers={**base, "Authorization": f"Bearer {tokens['orchestrator']}"}
        )
        assert opened.status_code == 200
        session = {
            **base,
            "mcp-session-id": opened.headers["mcp-session-id"],
            "mcp-protocol-version": "2025-11-25",
        }
        done = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        auth = {"Authorization": f"Bearer {tokens['orchestrator']}"}
        assert (await http.post(url, json=done, headers={**session, **auth})).status_code == 202
        for other in ({"Authorization": f"Bearer {tokens['viewer']}"}, {}):
            assert (await http.post(url, json=listing, headers={**session, **other})).status_code == 404
        assert (await http.post(url, json=listing, headers={**session, **auth})).status_code == 200


async def test_over_https_with_mutual_tls(tmp_path: Path):
    """The listener wants a client certificate; the broker's own calls go over its loopback socket,
    with the request's token: a certificate alone does not name the caller here."""
    ca, clients = CA(), CA("clients")
    settings = make_settings(
        tmp_path, auth="token", http_address="127.0.0.1:0", **write_server_files(tmp_path, ca, clients)
    )
    b = await start_server(settings)
    try:
        planner = issue(settings.db, "planner", "orchestrator")
        cert = clients.issue("planner", ou="orchestrator")
        verify = trusting(ca, tmp_path, (cert.cert, cert.key))
        assert b.http_url is not None and b.http_url.startswith("https://")
        async with http_session(b, planner, verify=verify) as mcp:
            task = await ok(mcp, "submit_task", title="over tls")
            got = await ok(mcp, "get_task", task_id=task["task"]["task_id"])
            assert got["task"]["title"] == "over tls"
        async with http_session(b, verify=verify) as mcp:
            assert "UNAUTHENTICATED" in await refused(mcp, "list_tasks")
    finally:
        await b.stop(0.2)


async def test_the_brokers_own_environment_never_lends_its_token(secured, monkeypatch):
    """A request without a token stays unauthenticated even when the broker's process has a token
    in its environment (as a client of its own API it might otherwise pick A2A_BROKER_TOKEN up)."""
    b, tokens = secured
    monkeypatch.setenv("A2A_BROKER_TOKEN", tokens["admin"])
    async with http_session(b) as mcp:
        assert "UNAUTHENTICATED" in await refused(mcp, "list_tasks")


async def test_quotas_apply_to_tool_calls_as_to_grpc_calls(tmp_path: Path):
    settings = make_settings(tmp_path, auth="token", http_address="127.0.0.1:0", quota_calls_per_s=1)
    b = await start_server(settings)
    try:
        planner = issue(settings.db, "planner", "orchestrator")
        async with http_session(b, planner) as mcp:
            answers = [await call(mcp, "list_tasks") for _ in range(10)]  # bursts of 2, then 1 a second
        refusals = [text(r) for r in answers if r.is_error]
        assert refusals and all("RESOURCE_EXHAUSTED" in t and "'planner'" in t for t in refusals)
    finally:
        await b.stop(0.2)
