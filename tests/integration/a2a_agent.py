"""An agent on the broker's own API that takes A2A turns, run as its own process by the A2A
tests: ``python -m tests.integration.a2a_agent ADDRESS AGENT_ID SKILL [TOKEN]``.

What it does with a turn, by the text of the caller's message:
- ``ask ...`` with no answer yet: asks "Which city?" (input-required); the answer turn completes
  with an artifact naming the city;
- ``fail``: fails for good;
- ``hold``: keeps the task (the tests cancel it);
- anything else: completes with the text upper-cased as an artifact named ``result``.
It reconnects while the broker restarts, and prints "ready" once registered.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from a2a_broker_client import BrokerClient
from a2a_broker_client.errors import BrokerRpcError

RESULT = "application/vnd.a2a-broker.result+json"


def text_of(message: dict[str, Any]) -> str:
    return " ".join(p.get("text", "") for p in message.get("parts", []))


def outcome(turn: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """What to answer: ("complete"|"fail", result), or None to hold the task."""
    text = text_of(turn["message"])
    asked = [text_of(m) for m in turn.get("history", [])]
    if text == "hold":
        return None
    if text == "fail":
        return "fail", {}
    if asked and asked[0].startswith("ask"):
        art = {"artifactId": "city", "name": "city", "parts": [{"text": f"city: {text}"}]}
        return "complete", {"state": "completed", "artifacts": [art]}
    if text.startswith("ask"):
        question = {"messageId": "q-1", "role": "ROLE_AGENT", "parts": [{"text": "Which city?"}]}
        return "complete", {"state": "input-required", "message": question}
    art = {"artifactId": "result", "name": "result", "parts": [{"text": text.upper()}]}
    return "complete", {"state": "completed", "artifacts": [art]}


async def run(address: str, agent_id: str, skill: str, token: str | None) -> None:
    registered = False
    while True:
        try:
            async with BrokerClient(address, timeout=10, token=token) as c:
                await c.register(agent_id, capabilities=[skill], max_concurrent_tasks=8)
                if not registered:
                    print("ready", flush=True)
                    registered = True
                while True:
                    for a in await c.claim(agent_id, max_tasks=8, wait=5):
                        todo = outcome(json.loads(a.task.spec.payload))
                        if todo is None:
                            continue
                        how, result = todo
                        if how == "fail":
                            await c.fail(a.task.task_id, agent_id, a.attempt, "it failed", non_retryable=True)
                        else:
                            await c.complete(
                                a.task.task_id,
                                agent_id,
                                a.attempt,
                                json.dumps(result).encode(),
                                result_content_type=RESULT,
                            )
        except BrokerRpcError:
            await asyncio.sleep(0.1)  # the broker restarts: connect again


if __name__ == "__main__":
    args = sys.argv[1:]
    asyncio.run(run(args[0], args[1], args[2], args[3] if len(args) > 3 else None))
