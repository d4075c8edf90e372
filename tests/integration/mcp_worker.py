"""A worker for the MCP tests, run as its own process:
``python -m tests.integration.mcp_worker ADDRESS AGENT_ID [TOKEN]``.

It has the capability ``text``; what it does with a task, by the task's JSON payload ``op``:
- ``upper``: completes with ``{"text": TEXT upper-cased}``;
- ``fail``: fails for good with the payload's ``error``;
- ``hold``: runs until cancelled;
- ``gate``: runs until a message ``{"release": TASK_ID}`` reaches the worker, then completes with
  ``{"released": true}``.
Any other message that is not itself a reply is answered (a reply in its conversation) with
``{"echo": PAYLOAD}``.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from a2a_broker_client import Message, NonRetryableError, TaskContext, Worker

CAPABILITY = "text"


class Behaviour:
    def __init__(self) -> None:
        self.worker: Worker | None = None
        self.gates: dict[str, asyncio.Event] = {}

    def gate(self, task_id: str) -> asyncio.Event:
        return self.gates.setdefault(task_id, asyncio.Event())

    async def on_task(self, ctx: TaskContext) -> Any:
        data = ctx.data or {}
        op = data.get("op")
        if op == "upper":
            return {"text": str(data.get("text", "")).upper()}
        if op == "fail":
            raise NonRetryableError(str(data.get("error", "it failed")))
        if op == "hold":
            await asyncio.Event().wait()
        if op == "gate":
            await ctx.progress(10, "waiting for the release message")
            await self.gate(ctx.task_id).wait()
            return {"released": True}
        raise NonRetryableError(f"unknown op {op!r}")

    async def on_message(self, msg: Message) -> None:
        data = msg.data
        if isinstance(data, dict) and "release" in data:
            self.gate(str(data["release"])).set()
            return
        if msg.in_reply_to:
            return
        assert self.worker is not None
        await self.worker.client.reply(msg, {"echo": data})


async def main(address: str, agent_id: str, token: str | None) -> None:
    b = Behaviour()
    b.worker = Worker(
        agent_id,
        capabilities=[CAPABILITY],
        capacity=8,
        address=address,
        token=token,
        on_task=b.on_task,
        on_message=b.on_message,
        drain_timeout=1.0,
    )
    await b.worker.run()


if __name__ == "__main__":
    args = sys.argv[1:]
    asyncio.run(main(args[0], args[1], args[2] if len(args) > 2 else None))
