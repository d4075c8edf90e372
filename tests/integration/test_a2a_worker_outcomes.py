"""The Python Worker takes part in A2A turns: a handler asks the caller (input-required), completes
on the answer with an artifact, or declares auth-required or rejected; an a2a-sdk client on the
broker's A2A gateway (gRPC) sees each state, and the Worker holds no task while the caller thinks."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from a2a_broker_client import BrokerClient, TaskContext, Worker, a2a_turns

from tests.conftest import eventually

from .a2a_support import a2a_client, say, state, texts


async def weather(ctx: TaskContext) -> object:
    """Asks for the city, then for the day, then answers with an artifact."""
    turn = ctx.turn
    assert turn is not None
    if ctx.turn_text == "reject me":
        return a2a_turns.rejected("I only do weather")
    if ctx.turn_text == "my calendar":
        return a2a_turns.auth_required("sign in to your calendar first")
    if ctx.turn_text == "old style":  # result()'s (bytes, content type) pair, as before
        return a2a_turns.result("Which one?", state="input-required")
    asked = len([m for m in turn["history"] if m["role"] == "ROLE_AGENT"])
    if asked == 0:
        return a2a_turns.input_required("Which city?")
    if asked == 1:
        return a2a_turns.input_required("Which day?")
    city = a2a_turns.text_of(turn["history"][-2])
    forecast = a2a_turns.artifact(f"Sunny in {city} on {ctx.turn_text}", name="forecast")
    return a2a_turns.completed(artifacts=[forecast], message="Here is your forecast")


@pytest.fixture
async def worker(broker) -> AsyncIterator[Worker]:
    async with Worker("weather-1", capabilities=["weather"], address=broker.address, on_task=weather) as w:
        yield w


async def test_a_worker_asks_twice_then_completes_with_an_artifact(broker, worker):
    client = a2a_client(broker.address)
    task = await say(client, "weather please", "m-1", skill="weather")
    assert state(task) == "TASK_STATE_INPUT_REQUIRED"
    assert texts([task.status.message]) == ["Which city?"]
    first_question = task.status.message.message_id
    uuid.UUID(first_question)  # a fresh id, not a constant

    # Waiting for the caller holds none of the worker's capacity.
    async with BrokerClient(broker.address, timeout=10) as c:

        async def idle() -> bool:
            return (await c.get_agent("weather-1")).current_task_count == 0

        await eventually(idle, timeout=10, what="the worker holds no task")

    task = await say(client, "Paris", "m-2", task=task)
    assert state(task) == "TASK_STATE_INPUT_REQUIRED"
    assert texts([task.status.message]) == ["Which day?"]
    assert task.status.message.message_id != first_question

    task = await say(client, "Sunday", "m-3", task=task)
    assert state(task) == "TASK_STATE_COMPLETED"
    assert [(a.name, texts([a])) for a in task.artifacts] == [("forecast", ["Sunny in Paris on Sunday"])]
    assert texts([task.status.message]) == ["Here is your forecast"]
    assert texts(task.history) == [
        "weather please",
        "Which city?",
        "Paris",
        "Which day?",
        "Sunday",
        "Here is your forecast",
    ]
    assert worker.stats.tasks_completed == 3 and worker.stats.tasks_failed == 0


async def test_a_worker_declares_rejected_and_auth_required_and_result_pairs_still_work(broker, worker):
    client = a2a_client(broker.address)
    task = await say(client, "reject me", "m-r", skill="weather")
    assert state(task) == "TASK_STATE_REJECTED"
    assert texts([task.status.message]) == ["I only do weather"]
    task = await say(client, "my calendar", "m-a", skill="weather")
    assert state(task) == "TASK_STATE_AUTH_REQUIRED"
    assert texts([task.status.message]) == ["sign in to your calendar first"]
    task = await say(client, "old style", "m-o", skill="weather")
    assert state(task) == "TASK_STATE_INPUT_REQUIRED"
    assert texts([task.status.message]) == ["Which one?"]


async def test_a_plain_client_completes_a_turn_with_an_encoded_outcome(broker):
    async with BrokerClient(broker.address, timeout=10) as c:
        await c.register("plain", capabilities=["plain"])
        sent = asyncio.ensure_future(say(a2a_client(broker.address), "hi", "m-p", skill="plain"))
        (job,) = await c.claim("plain", wait=10)
        assert job.task.spec.content_type == a2a_turns.TURN_TYPE
        payload, ctype = a2a_turns.input_required("Which one?").encode()
        await c.complete(job.task.task_id, "plain", job.attempt, payload, result_content_type=ctype)
        task = await sent
        assert state(task) == "TASK_STATE_INPUT_REQUIRED"
        assert texts([task.status.message]) == ["Which one?"]
