"""The A2A gateway as a standard A2A client meets it: a2a-sdk's client on its default
configuration (JSON-RPC 2.0 over HTTP, streaming over SSE, the agent card resolved from the
broker's URL), against a real broker and a worker agent in its own process."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from a2a.types import a2a_pb2 as a2a
from a2a.utils import errors as a2a_errors

from broker.server import start_server
from tests.conftest import make_settings

from .a2a_support import S, agent_process, collect, default_client, state_of, text_message
from .security_support import issue, revoke


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"http_address": "127.0.0.1:0"}


@pytest.fixture
async def echo(broker):
    async with agent_process(broker.address, "echo-agent", "echo"):
        yield


async def test_the_default_client_resolves_the_card_and_gets_the_completed_task_with_its_artifact(
    broker, echo
):
    client = await default_client(broker.http_url, streaming=False)  # a blocking send
    assert (
        client._transport.__class__.__name__ == "JsonRpcTransport"
    )  # the default binding, found on the card
    (resp,) = await collect(client.send_message(text_message("hello", "m-1")))
    task = resp.task
    assert task.status.state == S.Value("TASK_STATE_COMPLETED")
    assert [p.text for art in task.artifacts for p in art.parts] == ["HELLO"]
    assert [m.parts[0].text for m in task.history] == ["hello"]
    got = await client.get_task(a2a.GetTaskRequest(id=task.id, history_length=0))
    assert got.status.state == S.Value("TASK_STATE_COMPLETED") and not got.history
    await client.close()


async def test_a_streamed_task_arrives_in_order_and_a_resubscriber_gets_the_current_state_first(broker, echo):
    client = await default_client(broker.http_url)
    events = await collect(client.send_message(text_message("stream me", "m-2")))
    states = [state_of(e) for e in events]
    assert events[0].WhichOneof("payload") == "task"  # the task first
    assert states[-1] == "TASK_STATE_COMPLETED"
    if len(events) > 1:  # else done before the stream began: the task as it ended, artifact and all
        assert states[0] in ("TASK_STATE_SUBMITTED", "TASK_STATE_WORKING")
        artifact = next(i for i, e in enumerate(events) if e.WhichOneof("payload") == "artifact_update")
        assert artifact == len(events) - 2  # the artifact, then the final status
    else:
        assert events[0].task.artifacts
    order = ["TASK_STATE_SUBMITTED", "TASK_STATE_WORKING", "TASK_STATE_COMPLETED"]
    seen = [order.index(s) for s in states if s]
    assert seen == sorted(seen)
    # a task still running: a resubscriber gets it as it is, first
    (held,) = await collect(client.send_message(text_message("hold", "m-3")), 1)
    task_id = held.task.id
    sub = client.subscribe(a2a.SubscribeToTaskRequest(id=task_id))
    (current,) = await collect(sub, 1)
    assert current.task.id == task_id and state_of(current) in ("TASK_STATE_SUBMITTED", "TASK_STATE_WORKING")
    await sub.aclose()
    # cancelled: the task says so, and a finished task cannot be subscribed to
    cancelled = await client.cancel_task(a2a.CancelTaskRequest(id=task_id))
    assert cancelled.status.state == S.Value("TASK_STATE_CANCELED")
    with pytest.raises(a2a_errors.UnsupportedOperationError):
        await collect(client.subscribe(a2a.SubscribeToTaskRequest(id=task_id)))
    with pytest.raises(a2a_errors.TaskNotCancelableError):
        await client.cancel_task(a2a.CancelTaskRequest(id=task_id))
    await client.close()


async def test_input_required_round_trip(broker, echo):
    client = await default_client(broker.http_url)
    events = await collect(client.send_message(text_message("ask me", "m-4")))
    assert state_of(events[-1]) == "TASK_STATE_INPUT_REQUIRED"
    task_id = events[0].task.id
    asked = await client.get_task(a2a.GetTaskRequest(id=task_id))
    assert asked.status.message.parts[0].text == "Which city?"
    answer = text_message("Lyon", "m-5", task_id=task_id, context_id=asked.context_id)
    events = await collect(client.send_message(answer))
    assert state_of(events[-1]) == "TASK_STATE_COMPLETED"
    done = await client.get_task(a2a.GetTaskRequest(id=task_id))
    assert [p.text for a in done.artifacts for p in a.parts] == ["city: Lyon"]
    assert [m.parts[0].text for m in done.history] == ["ask me", "Which city?", "Lyon"]
    await client.close()


async def test_list_filters_before_paging_counts_all_and_shows_the_newest_first(broker, echo):
    client = await default_client(broker.http_url)
    done = []
    for i in range(5):
        events = await collect(client.send_message(text_message(f"job {i}", f"j-{i}")))
        done.append(events[0].task.id)
        # between the completed ones, tasks that wait for input (listed after them, page 1 first)
        await collect(client.send_message(text_message(f"ask {i}", f"q-{i}")))
    seen, token, totals = [], "", set()
    while True:
        page = await client.list_tasks(
            a2a.ListTasksRequest(status=S.Value("TASK_STATE_COMPLETED"), page_size=2, page_token=token)
        )
        assert 1 <= len(page.tasks) <= 2 and page.page_size == 2
        assert all(t.status.state == S.Value("TASK_STATE_COMPLETED") for t in page.tasks)
        totals.add(page.total_size)
        seen += [t.id for t in page.tasks]
        token = page.next_page_token
        if not token:
            break
    assert seen == done[::-1]  # newest status first, over three pages
    assert totals == {5}
    everything = await client.list_tasks(a2a.ListTasksRequest(page_size=100))
    assert everything.total_size == 10 and len(everything.tasks) == 10
    stamps = [t.status.timestamp.ToMicroseconds() for t in everything.tasks]
    assert stamps == sorted(stamps, reverse=True)
    later = everything.tasks[2].status.timestamp
    recent = await client.list_tasks(a2a.ListTasksRequest(status_timestamp_after=later, page_size=100))
    assert [t.id for t in recent.tasks] == [t.id for t in everything.tasks[:3]] and recent.total_size == 3
    await client.close()


@pytest.fixture
async def token_broker(tmp_path):
    b = await start_server(make_settings(tmp_path, auth="token", http_address="127.0.0.1:0"))
    try:
        yield b
    finally:
        await b.stop(0.2)


async def test_with_auth_a_call_without_credentials_is_refused_and_one_with_a_token_works(token_broker):
    db = token_broker.settings.db
    agent, alice = issue(db, "echo-agent", "agent"), issue(db, "alice", "orchestrator")
    viewer = issue(db, "dash", "viewer")
    async with agent_process(token_broker.address, "echo-agent", "echo", agent):
        bare = await default_client(token_broker.http_url)
        with pytest.raises(Exception, match="401"):
            await collect(bare.send_message(text_message("hi", "x-1")))
        as_viewer = await default_client(token_broker.http_url, viewer)  # a viewer speaks no A2A
        with pytest.raises(Exception, match="403"):
            await as_viewer.list_tasks(a2a.ListTasksRequest())
        as_alice = await default_client(token_broker.http_url, alice)
        events = await collect(as_alice.send_message(text_message("hi", "x-2")))
        assert state_of(events[-1]) == "TASK_STATE_COMPLETED"
        listed = await as_alice.list_tasks(a2a.ListTasksRequest())
        assert [t.id for t in listed.tasks] == [events[0].task.id]
        for c in (bare, as_viewer, as_alice):
            await c.close()


async def test_a_revoked_token_ends_its_open_a2a_streams(tmp_path):
    b = await start_server(make_settings(tmp_path, auth="token", http_address="127.0.0.1:0"))
    try:
        db = b.settings.db
        agent, alice = issue(db, "echo-agent", "agent"), issue(db, "alice", "orchestrator")
        async with agent_process(b.address, "echo-agent", "echo", agent):
            client = await default_client(b.http_url, alice)
            stream = client.send_message(text_message("hold", "h-1"))  # the agent keeps the task
            (first,) = await collect(stream, 1)
            sub = client.subscribe(a2a.SubscribeToTaskRequest(id=first.task.id))
            (current,) = await collect_open(sub)
            assert current.task.id == first.task.id
            revoke(db, alice)
            started = asyncio.get_running_loop().time()
            with pytest.raises(Exception):  # noqa: B017 - the stream is cut: whatever the SDK raises
                await asyncio.wait_for(anext(sub), 5)
            assert asyncio.get_running_loop().time() - started < 2.0
            await sub.aclose()
            await client.close()
    finally:
        await b.stop(0.2)


async def collect_open(stream: Any) -> list[Any]:
    """The first item of a stream that stays open."""
    return [await asyncio.wait_for(anext(stream), 15)]
