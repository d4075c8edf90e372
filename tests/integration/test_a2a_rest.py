"""A2A's HTTP+JSON binding with plain HTTP requests (httpx, no A2A library), as a curl user or a
client in another language makes them: the card, send (blocking and streamed over SSE), get,
list, cancel, push-notification configurations, the specification's errors, and the agent of one
skill that needs no metadata."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from a2a_broker_client import BrokerClient

from .a2a_support import agent_process


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"http_address": "127.0.0.1:0", "a2a_push_allow": "127.0.0.1/32"}


@pytest.fixture
async def echo(broker):
    async with agent_process(broker.address, "echo-agent", "echo"):
        yield


V1 = {"A2A-Version": "1.0"}  # what a 1.0 client sends with each request


def message(text: str, mid: str, **extra: Any) -> dict[str, Any]:
    return {"message": {"messageId": mid, "role": "ROLE_USER", "parts": [{"text": text}], **extra}}


async def rest_url(http: httpx.AsyncClient, card_url: str) -> str:
    card = (await http.get(card_url)).json()
    (iface,) = [
        i
        for i in card["supportedInterfaces"]
        if i["protocolBinding"] == "HTTP+JSON" and i["protocolVersion"] == "1.0"
    ]
    return iface["url"]


async def sse(http: httpx.AsyncClient, url: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The events of a streamed call, each ``data:`` line as JSON, until the server ends it."""
    out = []
    async with http.stream("POST", url, json=body, timeout=15) as resp:
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
        async for line in resp.aiter_lines():
            if line.startswith("data:"):
                out.append(json.loads(line[5:]))
    return out


async def test_the_whole_task_life_over_http_json(broker, echo):
    async with httpx.AsyncClient(timeout=15, headers=V1) as http:
        base = await rest_url(http, f"{broker.http_url}/.well-known/agent-card.json")
        assert base == broker.http_url
        # blocking send: the completed task with its artifact
        resp = await http.post(f"{base}/message:send", json=message("hello", "r-1"))
        assert resp.status_code == 200, resp.text
        task = resp.json()["task"]
        assert task["status"]["state"] == "TASK_STATE_COMPLETED"
        assert task["artifacts"][0]["parts"][0]["text"] == "HELLO"
        got = (await http.get(f"{base}/tasks/{task['id']}", params={"historyLength": 1})).json()
        assert got["id"] == task["id"] and len(got["history"]) == 1
        # streamed: the task first, then the artifact, then the final status
        events = await sse(http, f"{base}/message:stream", message("stream", "r-2"))
        assert "task" in events[0]
        if len(events) == 1:  # done before the stream began: the task as it ended, artifact and all
            assert (
                events[0]["task"]["status"]["state"] == "TASK_STATE_COMPLETED"
                and events[0]["task"]["artifacts"]
            )
        else:
            assert "artifactUpdate" in events[-2]
            assert events[-1]["statusUpdate"]["status"]["state"] == "TASK_STATE_COMPLETED"
        # a held task, cancelled
        held = (
            await http.post(
                f"{base}/message:send",
                json={**message("hold", "r-3"), "configuration": {"returnImmediately": True}},
            )
        ).json()["task"]
        cancelled = (await http.post(f"{base}/tasks/{held['id']}:cancel")).json()
        assert cancelled["status"]["state"] == "TASK_STATE_CANCELED"
        again = await http.post(f"{base}/tasks/{held['id']}:cancel")
        assert again.status_code == 400  # TaskNotCancelableError
        # list: newest first, filtered and counted
        page = (
            await http.get(f"{base}/tasks", params={"status": "TASK_STATE_COMPLETED", "pageSize": 1})
        ).json()
        assert page["totalSize"] == 2 and [t["id"] for t in page["tasks"]] == [events[0]["task"]["id"]]
        rest = (
            await http.get(
                f"{base}/tasks", params={"status": "TASK_STATE_COMPLETED", "pageToken": page["nextPageToken"]}
            )
        ).json()
        assert [t["id"] for t in rest["tasks"]] == [task["id"]] and rest["nextPageToken"] == ""
        # push-notification configurations: set, read, list, delete (idempotent)
        cfg = {"url": "http://127.0.0.1:1/hook", "token": "t-1"}
        made = await http.post(f"{base}/tasks/{task['id']}/pushNotificationConfigs", json=cfg)
        assert made.status_code == 200, made.text
        cid = made.json()["id"]
        one = (await http.get(f"{base}/tasks/{task['id']}/pushNotificationConfigs/{cid}")).json()
        assert one["url"] == cfg["url"] and one["token"] == "t-1"
        listed = (await http.get(f"{base}/tasks/{task['id']}/pushNotificationConfigs")).json()
        assert [c["id"] for c in listed["configs"]] == [cid]
        for _ in range(2):
            gone = await http.delete(f"{base}/tasks/{task['id']}/pushNotificationConfigs/{cid}")
            assert gone.status_code == 200
        assert (await http.get(f"{base}/tasks/{task['id']}/pushNotificationConfigs/{cid}")).status_code == 404


async def test_the_specification_errors_over_http_json(broker, echo):
    async with httpx.AsyncClient(timeout=15) as http:  # no A2A-Version: read as 1.0 on these paths
        base = broker.http_url
        for params, field in (
            ({"pageSize": 0}, "page_size"),
            ({"pageSize": 101}, "page_size"),
            ({"historyLength": -1}, "history_length"),
        ):
            resp = await http.get(f"{base}/tasks", params=params)
            assert resp.status_code == 400 and field in resp.text, (params, resp.text)
        assert (await http.get(f"{base}/tasks/t-nothing")).status_code == 404
        resp = await http.get(f"{base}/tasks/t-nothing", params={"historyLength": -2})
        assert resp.status_code == 400 and "history_length" in resp.text
        no_role = {"message": {"messageId": "r-9", "parts": [{"text": "hi"}]}}
        resp = await http.post(f"{base}/message:send", json=no_role)
        assert resp.status_code == 400 and "message.role" in resp.text
        listed = (await http.get(f"{base}/tasks")).json()
        assert listed["totalSize"] == 0  # the refused message was not taken
        # a push webhook on a private address is refused unless --a2a-push-allow names it
        done = (await http.post(f"{base}/message:send", json=message("x", "r-10"))).json()["task"]
        resp = await http.post(
            f"{base}/tasks/{done['id']}/pushNotificationConfigs", json={"url": "http://10.1.2.3/hook"}
        )
        assert resp.status_code == 400 and "non-public address" in resp.text
        resp = await http.post(
            f"{base}/tasks/{done['id']}/pushNotificationConfigs", json={"url": "ftp://example.com/x"}
        )
        assert resp.status_code == 400 and "http://" in resp.text
        # a client that says it speaks 0.3 on a 1.0 path is told so (0.3's paths are under /v1/)
        resp = await http.get(f"{base}/tasks", headers={"A2A-Version": "0.3"})
        assert resp.status_code == 400 and "VERSION_NOT_SUPPORTED" in resp.text
        resp = await http.get(f"{base}/tasks", params={"A2A-Version": "1.0"})
        assert resp.status_code == 200


async def test_each_skill_is_an_agent_of_its_own_that_needs_no_metadata(broker, echo):
    async with BrokerClient(broker.address, timeout=10) as c:
        await c.register("shouter", capabilities=["shout"], capability_descriptions={"shout": "Shouts back."})
        async with httpx.AsyncClient(timeout=15, headers=V1) as http:
            # two skills offered: the broker's own agent wants to be told which, and says where each is
            resp = await http.post(f"{broker.http_url}/message:send", json=message("hello", "s-1"))
            assert resp.status_code == 400
            assert (
                f"{broker.http_url}/a2a/echo/" in resp.text and f"{broker.http_url}/a2a/shout/" in resp.text
            )
            card = (await http.get(f"{broker.http_url}/a2a/echo/.well-known/agent-card.json")).json()
            assert card["name"] == "echo" and [s["id"] for s in card["skills"]] == ["echo"]
            grpc_iface = next(i for i in card["supportedInterfaces"] if i["protocolBinding"] == "GRPC")
            assert grpc_iface["tenant"] == "echo"
            base = await rest_url(http, f"{broker.http_url}/a2a/echo/.well-known/agent-card.json")
            assert base == f"{broker.http_url}/a2a/echo"
            task = (await http.post(f"{base}/message:send", json=message("hello", "s-2"))).json()["task"]
            assert task["artifacts"][0]["parts"][0]["text"] == "HELLO"
            # JSON-RPC at the same agent
            rpc = {"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": task["id"]}}
            got = (await http.post(f"{base}/", json=rpc)).json()
            assert got["result"]["status"]["state"] == "TASK_STATE_COMPLETED"
            assert (
                await http.get(f"{broker.http_url}/a2a/nobody/.well-known/agent-card.json")
            ).status_code == 404
            shout = (await http.get(f"{broker.http_url}/a2a/shout/.well-known/agent-card.json")).json()
            assert shout["description"] == "Shouts back."
            named = (await http.get(f"{broker.http_url}/a2a/@echo-agent/.well-known/agent-card.json")).json()
            assert [s["id"] for s in named["skills"]] == ["echo"]
            task = (
                await http.post(f"{broker.http_url}/a2a/@echo-agent/message:send", json=message("hi", "s-3"))
            ).json()
            assert task["task"]["artifacts"][0]["parts"][0]["text"] == "HI"
