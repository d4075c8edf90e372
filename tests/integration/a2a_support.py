"""An a2a-sdk client over gRPC to a broker's A2A gateway, for tests that play the A2A caller."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from a2a.client import ClientConfig, ClientFactory, minimal_agent_card
from a2a.types import a2a_pb2 as a2a

S = a2a.TaskState


def a2a_client(address: str) -> Any:
    """a2a-sdk's client (blocking sends) for the broker at ``address`` (host:port), over gRPC."""
    config = ClientConfig(
        streaming=False,
        grpc_channel_factory=lambda url: grpc.aio.insecure_channel(url.split("://", 1)[-1]),
        supported_protocol_bindings=["GRPC"],
    )
    return ClientFactory(config).create(minimal_agent_card(f"grpc://{address}", ["GRPC"]))


async def say(
    client: Any, text: str, mid: str, *, skill: str = "", task: a2a.Task | None = None, timeout: float = 20.0
) -> a2a.Task:
    """Send one message (to ``skill``, or into ``task`` as an answer) and return the A2A task once
    it ends or waits for the caller."""
    m = a2a.Message(message_id=mid, role=a2a.ROLE_USER)
    m.parts.add(text=text)
    if task is not None:
        m.task_id, m.context_id = task.id, task.context_id
    if skill:
        m.metadata.update({"skill": skill})

    async def first() -> a2a.Task:
        async for event in client.send_message(a2a.SendMessageRequest(message=m)):
            return event.task
        raise AssertionError("no answer to the message")

    try:
        return await asyncio.wait_for(first(), timeout)
    except TimeoutError:
        raise AssertionError(f"no answer to {text!r} within {timeout}s") from None


def state(task: a2a.Task) -> str:
    return a2a.TaskState.Name(task.status.state)


def texts(messages: Any) -> list[str]:
    return [p.text for m in messages for p in m.parts]
