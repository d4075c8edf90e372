"""A2A push notifications: every change of a task POSTed to the webhooks its caller configured,
in order, durably (retried with backoff across a broker restart while the receiver is down,
dead-lettered after the last attempt), with the configuration's credentials, and never to an
address the broker was not allowed to call."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from a2a.types import a2a_pb2 as a2a

from broker.server import start_server
from tests.conftest import eventually, free_port, make_settings

from .a2a_support import Receiver, agent_process, collect, default_client, pushed_states, text_message

FAST = {"http_address": "127.0.0.1:0", "a2a_push_allow": "127.0.0.1/32", "a2a_push_backoff_s": 0.05}


def with_push(req: a2a.SendMessageRequest, url: str, token: str = "tok-1") -> a2a.SendMessageRequest:
    cfg = req.configuration.task_push_notification_config
    cfg.url, cfg.token = url, token
    cfg.authentication.scheme, cfg.authentication.credentials = "Bearer", "hook-secret"
    req.configuration.return_immediately = True
    return req


def finished(bodies: list[dict[str, Any]]) -> bool:
    return bool(bodies) and pushed_states(bodies)[-1] == "TASK_STATE_COMPLETED"


def sane(bodies: list[dict[str, Any]], artifact: str = "result") -> None:
    """The task as it was when the configuration was set comes first; the artifact is told once
    (in that task, or as an update before the end); the task completes once, last."""
    states = pushed_states(bodies)
    assert "task" in bodies[0], states
    assert states[-1] == "TASK_STATE_COMPLETED" and states.count("TASK_STATE_COMPLETED") == 1, states
    in_first = [a["artifactId"] for a in bodies[0]["task"].get("artifacts", [])]
    assert in_first.count(artifact) + states.count(f"artifact:{artifact}") == 1, states
    assert all(a != b for a, b in zip(states, states[1:], strict=False)), (
        states
    )  # nothing told twice in a row


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return FAST


async def test_each_change_is_posted_in_order_with_the_configured_credentials(broker):
    hook = Receiver(free_port())
    await hook.start()
    try:
        async with agent_process(broker.address, "echo-agent", "echo"):
            client = await default_client(broker.http_url)
            (first,) = await collect(client.send_message(with_push(text_message("hi", "p-1"), hook.url)), 1)
            await hook.until(finished)
            sane([b for _, b in hook.got])
            headers, body = hook.got[0]
            assert headers["Content-Type"] == "application/a2a+json"
            assert headers["X-A2A-Notification-Token"] == "tok-1"
            assert headers["Authorization"] == "Bearer hook-secret"
            assert body["task"]["id"] == first.task.id
            configs = await client.list_task_push_notification_configs(
                a2a.ListTaskPushNotificationConfigsRequest(task_id=first.task.id)
            )
            assert [c.url for c in configs.configs] == [hook.url]
            await client.close()
    finally:
        await hook.stop()


async def test_notifications_wait_out_a_receiver_that_is_down_and_a_broker_restart(tmp_path: Path):
    hook = Receiver(free_port())  # down: nothing listens on its port yet
    settings = make_settings(
        tmp_path,
        **{**FAST, "address": f"127.0.0.1:{free_port()}", "http_address": f"127.0.0.1:{free_port()}"},
    )
    broker = await start_server(settings)
    try:
        async with agent_process(broker.address, "echo-agent", "echo"):
            client = await default_client(broker.http_url, streaming=False)
            ids = []
            for i in range(3):  # each asks for input first: a question, an answer, then the result
                req = with_push(text_message(f"ask {i}", f"r-{i}"), hook.url)
                req.configuration.return_immediately = False
                (asked,) = await collect(client.send_message(req))
                assert asked.task.status.state == a2a.TaskState.Value("TASK_STATE_INPUT_REQUIRED")
                answer = text_message(
                    f"city {i}", f"a-{i}", task_id=asked.task.id, context_id=asked.task.context_id
                )
                (done,) = await collect(client.send_message(answer))
                assert done.task.status.state == a2a.TaskState.Value("TASK_STATE_COMPLETED")
                ids.append(asked.task.id)
            await client.close()

            async def tried() -> bool:  # the broker tried to tell the receiver, in vain
                return broker.a2a.sender.stats.failed >= 3

            await eventually(tried, timeout=20, what="failed POSTs")
            assert hook.got == [] and (await broker.storage.push_counts()).delivered == 0
            await broker.stop()
            broker = await start_server(settings)  # nothing was delivered: all of it is still queued
            await hook.start()
            for task_id in ids:
                await hook.until(lambda bodies, t=task_id: finished([b for b in bodies if _task_of(b) == t]))

            async def settled() -> bool:
                return (await broker.storage.push_counts()).pending == 0

            await eventually(settled, what="every notification settled")
            queued = sorted(await broker.storage.push_list("delivered", 100), key=lambda d: d.seq)
            for task_id in ids:
                received = [b for _, b in hook.got if _task_of(b) == task_id]
                # every notification queued for the task arrived once, in the order it was queued
                assert received == [json.loads(d.body) for d in queued if d.task_id == task_id]
                states = pushed_states(received)
                assert "TASK_STATE_INPUT_REQUIRED" in pushed_states(received[:2]) and len(states) >= 3, states
                sane(received, "city")
    finally:
        await broker.stop()
        await hook.stop()


def _task_of(body: dict[str, Any]) -> str:
    if "task" in body:
        return str(body["task"]["id"])
    inner = body.get("statusUpdate") or body.get("artifactUpdate") or {}
    return str(inner.get("taskId", ""))


async def test_a_notification_refused_after_the_last_attempt_is_a_dead_letter_on_metrics_and_console(
    tmp_path,
):
    hook = Receiver(free_port(), status=500)
    await hook.start()
    b = await start_server(make_settings(tmp_path, **FAST, a2a_push_max_attempts=2))
    try:
        async with agent_process(b.address, "echo-agent", "echo"):
            client = await default_client(b.http_url)
            (ev,) = await collect(client.send_message(with_push(text_message("hi", "d-1"), hook.url)), 1)
            await client.close()

            async def dead() -> bool:
                return (await b.storage.push_counts()).dead >= 1

            await eventually(dead, timeout=20, what="a dead push notification")
            assert len(hook.got) >= 2  # two attempts of the first notification
            async with httpx.AsyncClient() as http:
                page = (await http.get(f"{b.http_url}/api/push?status=dead")).json()["push"]
                assert page[0]["task_id"] == ev.task.id and page[0]["last_error"] == "HTTP 500"
                assert page[0]["attempt"] == 2

                async def shown() -> Any:
                    text = (await http.get(f"{b.http_url}/metrics")).text
                    return 'a2a_push_notifications_total{outcome="dead_lettered"}' in text and text

                text = await eventually(shown, what="the dead letter in the metrics")
                assert 'a2a_push_notifications_total{outcome="failed"}' in text
    finally:
        await b.stop()
        await hook.stop()


async def test_a_configuration_set_later_gets_the_task_as_it_is_then_each_change(broker):
    hook = Receiver(free_port())
    await hook.start()
    try:
        async with agent_process(broker.address, "echo-agent", "echo"):
            client = await default_client(broker.http_url)
            asked = await collect(client.send_message(text_message("ask me", "c-1")))
            task_id = asked[0].task.id
            cfg = a2a.TaskPushNotificationConfig(task_id=task_id, url=hook.url, id="mine")
            made = await client.create_task_push_notification_config(cfg)
            assert made.id == "mine"
            await hook.until(lambda bodies: len(bodies) >= 1)
            assert pushed_states([hook.got[0][1]]) == ["TASK_STATE_INPUT_REQUIRED"]
            answer = text_message("Oslo", "c-2", task_id=task_id, context_id=asked[0].task.context_id)
            await collect(client.send_message(answer))
            await hook.until(finished)
            states = pushed_states([b for _, b in hook.got])
            assert states[0] == "TASK_STATE_INPUT_REQUIRED" and states[-1] == "TASK_STATE_COMPLETED"
            assert "artifact:city" in states
            await client.close()
    finally:
        await hook.stop()
