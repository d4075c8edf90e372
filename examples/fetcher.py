"""A worker agent that "fetches" material about a topic (capability ``fetch``).

Run it next to a broker, then start ``writer.py`` and ``orchestrator.py``::

    .venv/bin/python examples/fetcher.py            # Ctrl-C (or SIGTERM) to stop

Each ``fetch`` task carries ``{"topic": ..., "source": ...}``; the result is a
few made-up notes from that source (this example needs no network).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging

from a2a_broker_client import Message, TaskContext, Worker

SOURCES = {
    "encyclopedia": ["definition", "history", "key figures"],
    "papers": ["recent results", "open problems", "methods"],
    "news": ["this week's headline", "an interview", "a controversy"],
}


async def on_task(ctx: TaskContext) -> dict[str, object]:
    topic, source = ctx.data["topic"], ctx.data["source"]
    notes = []
    for i, aspect in enumerate(SOURCES.get(source, ["a mention"]), start=1):
        await asyncio.sleep(0.2)  # pretend to fetch
        digest = hashlib.sha1(f"{topic}/{source}/{aspect}".encode()).hexdigest()[:6]
        notes.append(f"{aspect} of {topic} ({source} #{digest})")
        await ctx.progress(100 * i // 3, f"read {aspect}")
    print(f"[{ctx.agent_id}] fetched {len(notes)} notes on {topic!r} from {source}", flush=True)
    return {"source": source, "notes": notes}


async def on_message(msg: Message) -> None:
    print(f"[fetcher] message from {msg.sender_id}: {msg.data}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--address", help="broker host:port (default $A2A_BROKER_ADDRESS or 127.0.0.1:50051)")
    p.add_argument("--id", default="fetcher-1", help="agent id (default fetcher-1)")
    p.add_argument("--capacity", type=int, default=2, help="tasks at once (default 2)")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    worker = Worker(
        args.id,
        address=args.address,
        capabilities=["fetch"],
        capacity=args.capacity,
        on_task=on_task,
        on_message=on_message,
        drain_timeout=10,
    )
    print(f"[{args.id}] ready (capability fetch, capacity {args.capacity}); Ctrl-C to stop", flush=True)
    asyncio.run(worker.run())
    print(f"[{args.id}] stopped", flush=True)


if __name__ == "__main__":
    main()
