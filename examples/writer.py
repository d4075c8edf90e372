"""A worker agent that writes (capability ``write``).

Two kinds of tasks:

- ``summarize``: reads the results of its prerequisites (the fetch tasks) and
  merges their notes into a summary;
- ``publish``: takes the summary, sends the finished report as a message to
  whoever submitted the graph (``submitted_by``), and completes.

Run::

    .venv/bin/python examples/writer.py             # Ctrl-C (or SIGTERM) to stop
"""

from __future__ import annotations

import argparse
import asyncio
import logging

from a2a_broker_client import NonRetryableError, TaskContext, Worker


async def summarize(ctx: TaskContext) -> dict[str, object]:
    notes: list[str] = []
    sources = []
    for dep in ctx.task.spec.depends_on:
        prerequisite = await ctx.client.get_task(dep if isinstance(dep, str) else dep.task_id)
        result = prerequisite.result_data or {}
        sources.append(result.get("source", "?"))
        notes.extend(result.get("notes", []))
    await ctx.progress(50, "merging notes")
    await asyncio.sleep(0.2)  # pretend to write
    return {"topic": ctx.data["topic"], "sources": sorted(sources), "summary": notes}


async def publish(ctx: TaskContext) -> dict[str, object]:
    (dep,) = ctx.task.spec.depends_on
    summary = (await ctx.client.get_task(dep if isinstance(dep, str) else dep.task_id)).result_data
    lines = [f"Report on {summary['topic']} (from {', '.join(summary['sources'])}):"]
    lines += [f"  - {n}" for n in summary["summary"]]
    report = "\n".join(lines)
    to = ctx.task.spec.submitted_by
    if to:
        await ctx.client.send(
            ctx.agent_id,
            to,
            {"report": report, "task_id": ctx.task_id},
            message_type="report.ready",
            conversation_id=ctx.task.spec.session_id,
            idempotency_key=f"report-{ctx.task_id}",  # a retried publish sends one message
        )
    return {"report": report, "sent_to": to}


async def on_task(ctx: TaskContext) -> dict[str, object]:
    handler = {"summarize": summarize, "publish": publish}.get(ctx.task.spec.task_type)
    if handler is None:
        raise NonRetryableError(f"writer cannot do task type {ctx.task.spec.task_type!r}")
    result = await handler(ctx)
    print(f"[{ctx.agent_id}] {ctx.task.spec.task_type} done for {ctx.task.title!r}", flush=True)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--address", help="broker host:port (default $A2A_BROKER_ADDRESS or 127.0.0.1:50051)")
    p.add_argument("--id", default="writer-1", help="agent id (default writer-1)")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    worker = Worker(
        args.id, address=args.address, capabilities=["write"], capacity=1, on_task=on_task, drain_timeout=10
    )
    print(f"[{args.id}] ready (capability write); Ctrl-C to stop", flush=True)
    asyncio.run(worker.run())
    print(f"[{args.id}] stopped", flush=True)


if __name__ == "__main__":
    main()
