"""The HTTP listener: /healthz, /readyz, /metrics (exact values after a scripted workload, bounded
cardinality, authentication), the access log and the lifecycle log lines."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from broker.errors import BrokerError, StorageUnavailable
from broker.pb import agents_pb2 as apb
from broker.pb import messaging_pb2 as mpb
from broker.pb import tasks_pb2 as tpb
from broker.server import Broker, start_server
from tests.conftest import Stubs, eventually, make_settings, stubs_for
from tests.integration import tasks_helpers as th
from tests.integration.messaging_support import Sub, ack, register, send

from .security_support import issue
from .tls_support import CA, write_server_files

HTTP = {"http_address": "127.0.0.1:0"}


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {**HTTP, "metrics_census_s": 0}


async def get(broker: Broker, path: str, token: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"http://{broker.http_address}{path}", headers=headers) as r,
    ):
        return r.status, await r.text()


async def scrape(
    broker: Broker, token: str | None = None
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics: (name, sorted labels) -> value."""
    status, text = await get(broker, "/metrics", token)
    assert status == 200, text
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def one(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


async def test_health_and_readiness_answer_and_readiness_fails_when_storage_does(broker, monkeypatch):
    assert await get(broker, "/healthz") == (200, "ok\n")
    assert await get(broker, "/readyz") == (200, "ready\n")

    async def broken() -> None:  # injected failure: the database refuses writes
        raise StorageUnavailable("storage error: disk I/O error")

    monkeypatch.setattr(broker.storage, "probe", broken)
    status, text = await get(broker, "/readyz")
    assert status == 503 and "disk I/O error" in text
    assert (await get(broker, "/healthz"))[0] == 200  # alive, not ready


async def test_metrics_count_a_scripted_workload_exactly(broker: Broker, stubs: Stubs):
    for agent in ("sender", "reader"):
        await register(stubs, agent)
    await th.register(stubs, "worker", capacity=2)
    ids = [await send(stubs, "sender", "reader", f"m{i}".encode()) for i in range(3)]
    sub = await Sub.open(stubs, "reader")
    got = await sub.take(3)
    assert {m.message_id for m in got} == set(ids)
    await ack(stubs, "reader", ids[:2])
    r = await stubs.messaging.Nack(mpb.NackRequest(agent_id="reader", message_ids=[ids[2]], reject=True))
    assert r.dead_lettered == 1
    sub.cancel()
    for title in ("ok", "bad"):
        await th.submit(stubs, title)
    leases = await th.claim(stubs, "worker", n=2)
    by_title = {a.task.spec.title: a for a in leases}
    await th.complete(stubs, by_title["ok"], "worker")
    await th.fail(stubs, by_title["bad"], "worker", final=True)
    with pytest.raises(grpc.aio.AioRpcError):
        await stubs.agents.GetAgent(apb.GetAgentRequest(agent_id="nobody"))
    not_found = (
        ("grpc_code", "NOT_FOUND"),
        ("grpc_method", "GetAgent"),
        ("grpc_service", "a2a.broker.v1.AgentRegistry"),
    )

    # A refused call's status reaches the client before its handler resumes to time it: wait for it.
    async def timed() -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
        m = await scrape(broker)
        return m if ("grpc_server_handling_seconds_count", not_found) in m else None

    m = await eventually(timed, what="the refused GetAgent to be timed")
    expected = {
        ("a2a_messages_published_total", ()): 3,
        ("a2a_messages_delivered_total", ()): 3,
        ("a2a_messages_redelivered_total", ()): 0,
        ("a2a_messages_acknowledged_total", ()): 2,
        ("a2a_messages_dead_lettered_total", (("reason", "rejected"),)): 1,
        ("a2a_messages_dead_lettered_total", (("reason", "attempts_exhausted"),)): 0,
        ("a2a_messages_dead_letters", (("recipient_kind", "direct"),)): 1,
        ("a2a_messages_ready", (("recipient_kind", "direct"),)): 0,
        ("a2a_messages_unacked", (("recipient_kind", "direct"),)): 0,
        ("a2a_tasks_submitted_total", ()): 2,
        ("a2a_tasks_assigned_total", ()): 2,
        ("a2a_tasks_completed_total", ()): 1,
        ("a2a_tasks_failed_total", ()): 1,
        ("a2a_tasks_retried_total", ()): 0,
        ("a2a_tasks", (("status", "completed"),)): 1,
        ("a2a_tasks", (("status", "failed"),)): 1,
        ("a2a_tasks", (("status", "running"),)): 0,
        ("a2a_agents", (("status", "available"),)): 3,
        ("a2a_task_queue_wait_seconds_count", ()): 2,
        ("a2a_task_run_seconds_count", ()): 2,
        ("a2a_agent_messages_pending", (("agent_id", "_other"),)): 0,
        ("a2a_open_streams", (("grpc_method", "Subscribe"),)): 0,
    }
    assert {k: m.get(k) for k in expected} == expected
    sends = (("grpc_code", "OK"), ("grpc_method", "Send"), ("grpc_service", "a2a.broker.v1.Messaging"))
    assert m[("grpc_server_handling_seconds_count", sends)] == 3
    assert m[("grpc_server_handling_seconds_count", not_found)] == 1
    assert m[("a2a_storage_size_bytes", ())] > 0
    assert m[("a2a_storage_commit_seconds_count", ())] > 0


async def test_backlog_series_stay_bounded_with_5000_agents(tmp_path: Path):
    b = await start_server(make_settings(tmp_path, **HTTP, metrics_top_n=10))
    try:

        def fill(conn: Any) -> None:  # 5,000 agents with 1 to 3 pending messages each
            conn.executemany(
                "INSERT INTO agents (agent_id, name, max_concurrent_tasks, registered_at, updated_at,"
                " last_heartbeat_at) VALUES (?, ?, 1, 0, 0, 0)",
                [(f"a{i}", "n") for i in range(5000)],
            )
            conn.executemany(
                "INSERT INTO a2a_messages (message_id, send_id, sender_id, recipient_id, target_kind,"
                " payload, created_at) VALUES (?, ?, 'a0', ?, 'direct', x'', 0)",
                [(f"m{i}-{k}", f"m{i}-{k}", f"a{i}") for i in range(5000) for k in range(1 + i % 3)],
            )

        await b.storage.engine.write(fill)  # type: ignore[attr-defined]
        m = await scrape(b)
        per_agent = {
            dict(labels)["agent_id"]: v
            for (name, labels), v in m.items()
            if name == "a2a_agent_messages_pending"
        }
        assert len(per_agent) == 11  # the 10 largest backlogs and _other
        assert sorted(v for k, v in per_agent.items() if k != "_other") == [3.0] * 10
        assert sum(per_agent.values()) == sum(1 + i % 3 for i in range(5000))
    finally:
        await b.stop(0.2)


@pytest.fixture
async def token_broker(tmp_path: Path) -> AsyncIterator[Broker]:
    b = await start_server(make_settings(tmp_path, **HTTP, auth="token", metrics_token="scraper-secret"))
    try:
        yield b
    finally:
        await b.stop(0.2)


async def test_with_auth_metrics_want_an_admin_or_the_metrics_token_and_health_stays_open(token_broker):
    db = token_broker.settings.db
    assert (await get(token_broker, "/metrics"))[0] == 401
    assert (await get(token_broker, "/metrics", "not-a-token"))[0] == 401
    assert (await get(token_broker, "/metrics", issue(db, "alice")))[0] == 403
    assert (await get(token_broker, "/metrics", issue(db, "ops", "admin")))[0] == 200
    assert (await get(token_broker, "/metrics", "scraper-secret"))[0] == 200
    assert (await get(token_broker, "/healthz"))[0] == 200
    assert (await get(token_broker, "/readyz"))[0] == 200


async def test_an_open_metrics_endpoint_on_the_network_is_refused_unless_insecure(tmp_path: Path):
    with pytest.raises(BrokerError, match="/metrics"):
        await start_server(make_settings(tmp_path, http_address="0.0.0.0:0"))
    b = await start_server(
        make_settings(tmp_path, http_address="0.0.0.0:0", metrics_token="t", insecure=True)
    )
    await b.stop(0.2)


async def test_a_network_http_listener_with_tokens_needs_tls(tmp_path: Path):
    """Tokens (console sign-in, /metrics, A2A, MCP) must not cross the network in clear."""
    for risky in ({"auth": "token"}, {"metrics_token": "t"}):
        with pytest.raises(BrokerError, match="serves no TLS, so tokens would cross the network in clear"):
            await start_server(make_settings(tmp_path, http_address="0.0.0.0:0", **risky))
    assert not (tmp_path / "broker.db").exists()  # refused before storage was touched
    tls = write_server_files(tmp_path, CA())
    b = await start_server(make_settings(tmp_path, http_address="0.0.0.0:0", auth="token", **tls))
    try:
        assert b.http_url is not None and b.http_url.startswith("https://")
    finally:
        await b.stop(0.2)


async def test_a_busy_http_port_fails_the_start_and_frees_the_grpc_port(tmp_path: Path, broker: Broker):
    with pytest.raises(BrokerError, match="--http-address"):
        await start_server(make_settings(tmp_path / "2", http_address=broker.http_address))


async def test_access_log_and_lifecycle_lines(tmp_path: Path, caplog):
    caplog.set_level(logging.INFO)
    b = await start_server(make_settings(tmp_path, access_log=True))
    s = stubs_for(b.address)
    try:
        await register(s, "alice")
        with pytest.raises(grpc.aio.AioRpcError):
            await s.agents.GetAgent(apb.GetAgentRequest(agent_id="nobody"))
        sub = await Sub.open(s, "alice")
        sub.cancel()
        await eventually(lambda: _logged(caplog, "stream closed"), what="the stream closed line")
        await s.agents.Deregister(apb.DeregisterRequest(agent_id="alice"))
    finally:
        await s.channel.close()
        await b.stop(0.2)
    rpc = [r for r in caplog.records if r.name == "broker.access"]
    assert any(r.method.endswith("/Register") and r.code == "OK" and r.subject == "-" for r in rpc)
    assert any(r.method.endswith("/GetAgent") and r.code == "NOT_FOUND" for r in rpc)
    lines = {r.getMessage() for r in caplog.records if r.name.startswith("broker.")}
    assert {"agent registered", "stream opened", "stream closed", "agent deregistered"} <= lines


async def _logged(caplog: Any, message: str) -> bool:
    return any(r.getMessage() == message for r in caplog.records)


async def test_tasks_submitted_by_schedules_are_counted(stubs: Stubs, broker: Broker):
    spec = tpb.ScheduleSpec(task=tpb.TaskSpec(title="t"), interval=th.duration(3600))
    await stubs.tasks.CreateSchedule(tpb.CreateScheduleRequest(schedule_id="s", spec=spec))
    await th.submit(stubs, "not by a schedule")
    for _ in range(2):
        await stubs.tasks.TriggerSchedule(tpb.TriggerScheduleRequest(schedule_id="s"))
    m = await scrape(broker)
    assert (one(m, "a2a_schedule_tasks_submitted_total"), one(m, "a2a_tasks_submitted_total")) == (2, 3)


async def test_metrics_per_subscription(broker: Broker, stubs: Stubs):
    await register(stubs, "sender")
    for name in ("busy", "idle"):
        await stubs.messaging.CreateSubscription(mpb.CreateSubscriptionRequest(name=name, filter=f"{name}.>"))
    for i in range(3):
        await send(stubs, "sender", mpb.Target(subject="busy.x"), f"m{i}".encode())
    m = await scrape(broker)
    assert one(m, "a2a_subscription_messages_pending", subscription="busy") == 3
    assert one(m, "a2a_subscription_messages_unacked", subscription="busy") == 3
    assert one(m, "a2a_subscription_oldest_unacked_age_seconds", subscription="busy") >= 0
    assert ("a2a_subscription_messages_pending", (("subscription", "idle"),)) not in m  # nothing waiting
