"""An orchestrator: submits a small task graph, follows it, and prints the report.

The graph (one session, one SubmitGraph call, all or nothing)::

    fetch-encyclopedia --\\
    fetch-papers --------+--> summarize --> publish
    fetch-news ---------/

The three fetches need the capability ``fetch`` (``fetcher.py``) and run in
parallel, up to the fetcher's capacity; ``summarize`` and ``publish`` need
``write`` (``writer.py``) and become ready only when their prerequisites
complete. ``publish`` sends the finished report back to this orchestrator as
a message. Run it once the broker and both workers are up::

    .venv/bin/python examples/orchestrator.py --topic "solar sails"

Exit code 0 when the report arrived, 1 when the graph failed or timed out, 3 when
the broker is unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid

from a2a_broker_client import (
    BrokerClient,
    BrokerRpcError,
    GraphNode,
    TaskSpec,
    TaskStatus,
    UnavailableError,
)

SOURCES = ("encyclopedia", "papers", "news")


def build_graph(topic: str, session: str, me: str) -> list[GraphNode]:
    common = dict(session_id=session, submitted_by=me, lease_timeout=10)
    fetches = [
        GraphNode(
            f"fetch-{source}",
            TaskSpec(
                f"fetch {topic!r} from {source}",
                task_type="fetch",
                payload={"topic": topic, "source": source},
                required_capabilities=["fetch"],
                **common,  # type: ignore[arg-type]
            ),
        )
        for source in SOURCES
    ]
    summarize = GraphNode(
        "summarize",
        TaskSpec(
            f"summarize {topic!r}",
            task_type="summarize",
            payload={"topic": topic},
            required_capabilities=["write"],
            priority=7,
            **common,
        ),  # type: ignore[arg-type]
        depends_on_keys=[n.key for n in fetches],
    )
    publish = GraphNode(
        "publish",
        TaskSpec(
            f"publish the report on {topic!r}",
            task_type="publish",
            required_capabilities=["write"],
            priority=7,
            **common,
        ),  # type: ignore[arg-type]
        depends_on_keys=["summarize"],
    )
    return [*fetches, summarize, publish]


async def run(args: argparse.Namespace) -> int:
    me = args.id
    async with BrokerClient(args.address) as client:
        # Registered so that the report can be sent back to us as a message.
        await client.register(me, agent_type="orchestrator", max_concurrent_tasks=1)
        # One session for the whole orchestration: it ends once closed and every task finished.
        opened = await client.create_session(
            f"report on {args.topic}",
            session_id=f"report-{uuid.uuid4().hex[:8]}",
            initiated_by=me,
            context={"topic": args.topic},
        )
        session = opened.session_id
        graph = await client.submit_graph(build_graph(args.topic, session, me))
        await client.close_session(session, summary="no more tasks: the graph is the whole plan")
        names = {task_id: key for key, task_id in graph.task_ids.items()}
        print(f"submitted {len(names)} tasks in session {session}:")
        for t in graph.tasks:
            print(f"  {names[t.task_id]:<20} {t.task_id}  {t.status.value}")

        publish_id = graph.task_ids["publish"]
        try:
            async with asyncio.timeout(args.timeout):
                # The snapshot first, then every state change of the session as it happens.
                async with client.watch_tasks(session_id=session, include_snapshot=True) as events:
                    async for ev in events:
                        tr = ev.transition
                        if not ev.snapshot:
                            who = f" ({tr.actor})" if tr.actor and tr.actor != me else ""
                            print(
                                f"  {names.get(tr.task_id, tr.task_id):<20} "
                                f"{tr.from_status or '-'} -> {tr.to_status}{who}",
                                flush=True,
                            )
                        if tr.task_id == publish_id and tr.to_status.finished:
                            break
                final = await client.get_task(publish_id)
                if final.status != TaskStatus.COMPLETED:
                    print(f"the graph did not complete: publish is {final.status.value} ({final.last_error})")
                    return 1
                # publish sent the report to us: read it from our inbox and ack it.
                async with client.subscribe(me) as inbox:
                    msg = await anext(inbox)
                    await client.ack(me, msg.message_id)
        except TimeoutError:
            print(f"timed out after {args.timeout}s: are examples/fetcher.py and examples/writer.py running?")
            return 1
        ended = await client.get_session(session)
        print(f"\nsession {session}: {ended.status.value} ({ended.status_reason}), tasks {ended.task_counts}")
        print(f"message {msg.message_type!r} from {msg.sender_id}:\n{msg.data['report']}")
        await client.deregister(me)
        return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--address", help="broker host:port (default $A2A_BROKER_ADDRESS or 127.0.0.1:50051)")
    p.add_argument("--topic", default="solar sails", help="what the report is about")
    p.add_argument("--id", default="orchestrator-1", help="this orchestrator's agent id")
    p.add_argument("--timeout", type=float, default=60.0, help="give up after this many seconds")
    args = p.parse_args()
    try:
        return asyncio.run(run(args))
    except UnavailableError as exc:
        print(f"cannot reach the broker: {exc}", file=sys.stderr)
        return 3
    except BrokerRpcError as exc:
        print(f"the broker refused: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
