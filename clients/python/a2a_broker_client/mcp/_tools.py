"""The tools: each one an argument model (its input schema), annotations saying whether it changes
anything, and a coroutine over :class:`BrokerClient` that answers a short text and a JSON value.

Nothing here decides who may do what: every call goes to the broker with the caller's credentials
(see ``Connector``), which applies its authorization policy and quotas as to any other client.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from mcp_types import ToolAnnotations

from .. import models as m
from ..client import BrokerClient
from . import _args as a
from . import _views as v

MAX_PAGE = 500  # items fetched per listing (the limit argument's ceiling)


@dataclass(frozen=True)
class Outcome:
    """What a tool answers: a line or two for the model to read, the JSON value behind it, and
    whether it is an error (a failed task is: the model should not take it for a result)."""

    text: str
    data: dict[str, Any]
    error: bool = False


class ToolFailure(Exception):
    """A tool cannot do what it was asked; the message says why (nothing was changed)."""


Progress = Callable[[float, str], Awaitable[None]]


@dataclass(frozen=True)
class Call:
    """One tool call: the client to the broker (with the caller's credentials) and a way to
    report progress to the host (a no-op when it asked for none)."""

    client: BrokerClient
    progress: Progress


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    args: type[a.Args]
    annotations: ToolAnnotations
    run: Callable[[Call, Any], Awaitable[Outcome]]


READ = ToolAnnotations(read_only_hint=True, open_world_hint=False)
CREATE = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False
)
UPDATE = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)
DESTROY = ToolAnnotations(
    read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False
)


async def _agents(client: BrokerClient, limit: int = 10_000, **filters: Any) -> list[m.Agent]:
    out: list[m.Agent] = []
    async for agent in client.iter_agents(**filters):
        out.append(agent)
        if len(out) >= limit:
            break
    return out


# ---------------------------------------------------------------- agents


async def list_capabilities(call: Call, _: a.Empty) -> Outcome:
    rows = v.capabilities(await _agents(call.client))
    if not rows:
        return Outcome("No agent is registered: nothing can run tasks yet.", {"capabilities": []})
    lines = [
        f"{r['capability']}: {r['online']}/{r['agents']} agents online, {r['free_capacity']} free"
        + (f" - {r['description']}" if r["description"] else "")
        for r in rows
    ]
    return Outcome("\n".join(lines), {"capabilities": rows})


async def list_agents(call: Call, args: a.ListAgents) -> Outcome:
    agents = await _agents(call.client, args.limit, capability=args.capability, status=args.status)
    views = [v.agent(x) for x in agents]
    lines = [f"{x.agent_id} ({x.status.value}): {', '.join(x.capabilities) or '-'}" for x in agents]
    return Outcome("\n".join(lines) or "No agent matches.", {"agents": views})


# ---------------------------------------------------------------- tasks


def _spec(f: a.TaskFields, **extra: Any) -> m.TaskSpec:
    return m.TaskSpec(
        title=f.title,
        payload=f.payload,
        required_capabilities=[f.capability] if f.capability else [],
        priority=f.priority,
        deadline=f.deadline,
        session_id=f.session_id,
        retry=m.RetryPolicy(max_retries=f.max_retries) if f.max_retries is not None else None,
        labels=dict(f.labels),
        **extra,
    )


async def submit_task(call: Call, args: a.SubmitTask) -> Outcome:
    spec = _spec(
        args, parent_id=args.parent_id, depends_on=list(args.depends_on), idempotency_key=args.idempotency_key
    )
    res = await call.client.submit(spec)
    t = res.task
    note = " (already submitted with this idempotency key)" if res.duplicate else ""
    return Outcome(
        f"Submitted {v.task_line(t)}{note}. Call wait_for_task with task_id {t.task_id} for its result.",
        {"task": v.task(t), "duplicate": res.duplicate},
    )


async def submit_graph(call: Call, args: a.SubmitGraph) -> Outcome:
    nodes = [
        m.GraphNode(key=n.key, spec=_spec(n), depends_on_keys=list(n.depends_on), parent_key=n.parent)
        for n in args.nodes
    ]
    res = await call.client.submit_graph(nodes)
    lines = [f"{key} -> {v.task_line(t)}" for key, t in zip(res.task_ids, res.tasks, strict=False)]
    return Outcome(
        f"Submitted {len(res.tasks)} tasks:\n" + "\n".join(lines),
        {"task_ids": res.task_ids, "tasks": [v.task(t) for t in res.tasks]},
    )


async def wait_for_task(call: Call, args: a.WaitForTask) -> Outcome:
    """Follows the task's own events (its Watch, a snapshot first), reporting each as progress,
    until it is finished or ``timeout_s`` passes; then answers it as it is."""
    task: m.Task | None = None
    seen = 0
    try:
        async with asyncio.timeout(args.timeout_s):
            async with call.client.watch_tasks(task_id=args.task_id, include_snapshot=True) as events:
                async for ev in events:
                    if ev.transition.task_id != args.task_id:
                        continue
                    task = ev.task or await call.client.get_task(args.task_id)
                    seen += 1
                    await call.progress(seen, v.task_line(task))
                    if task.status.finished:
                        break
    except TimeoutError:
        pass
    if task is None or not task.status.finished:
        task = await call.client.get_task(args.task_id)
    data = {"task": v.task(task), "finished": task.status.finished}
    if task.status is m.TaskStatus.COMPLETED:
        return Outcome(f"Completed: {v.task_line(task)}.\n{v.result_text(task)}", data)
    if task.status is m.TaskStatus.FAILED:
        return Outcome(f"Task {task.task_id} failed: {task.last_error or 'no error given'}", data, error=True)
    if task.status is m.TaskStatus.CANCELLED:
        reason = task.status_note or task.last_error or "no reason given"
        return Outcome(f"Task {task.task_id} was cancelled ({reason}): no result.", data, error=True)
    return Outcome(
        f"Not finished after {args.timeout_s:g}s: {v.task_line(task)}. Call wait_for_task again to "
        "keep waiting.",
        data,
    )


async def get_task(call: Call, args: a.GetTask) -> Outcome:
    t = await call.client.get_task(args.task_id)
    history = await call.client.get_history(args.task_id) if args.history else None
    text = v.task_line(t) + (f"\n{v.result_text(t)}" if t.status is m.TaskStatus.COMPLETED else "")
    return Outcome(text, {"task": v.task(t, history)})


async def list_tasks(call: Call, args: a.ListTasks) -> Outcome:
    filters = args.model_dump(exclude={"limit"}, exclude_defaults=True)
    found: list[m.Task] = []
    async for t in call.client.iter_tasks(page_size=min(args.limit, MAX_PAGE), **filters):
        found.append(t)
        if len(found) >= args.limit:
            break
    text = "\n".join(v.task_line(t) for t in found) or "No task matches."
    return Outcome(text, {"tasks": [v.task(t) for t in found]})


async def cancel_task(call: Call, args: a.CancelTask) -> Outcome:
    ids = await call.client.cancel(args.task_id, cascade=args.cascade, reason=args.reason)
    text = f"Cancelled {', '.join(ids)}." if ids else "Nothing was left to cancel."
    return Outcome(text, {"cancelled_task_ids": ids})


async def retry_task(call: Call, args: a.RetryTask) -> Outcome:
    t = await call.client.replay(args.task_id)
    return Outcome(f"Submitted again as {v.task_line(t)} (the copy of {args.task_id}).", {"task": v.task(t)})


# ---------------------------------------------------------------- messages


async def send_message(call: Call, args: a.SendMessage) -> Outcome:
    to = args.to
    if args.mode == "direct" and not to:
        if not args.reply_to:
            raise ToolFailure("argument 'to': give the recipient agent id (or reply_to)")
        to = (await call.client.get_message(args.reply_to)).sender_id
    if args.mode == "anycast" and not to:
        raise ToolFailure("argument 'to': anycast needs the capability of the agents to choose from")
    target = {
        "direct": lambda: m.Target.direct(to),
        "anycast": lambda: m.Target.anycast(to),
        "broadcast": lambda: m.Target.broadcast(to),
    }[args.mode]()
    # A new conversation unless one is named (a reply stays in the replied message's).
    conversation = args.conversation_id or ("" if args.reply_to else f"conv-{uuid.uuid4().hex}")
    res = await call.client.send(
        args.sender_id,
        target,
        args.payload,
        message_type=args.message_type,
        conversation_id=conversation,
        in_reply_to=args.reply_to,
    )
    if res.message_ids and not conversation:
        conversation = (await call.client.get_message(res.message_id)).conversation_id
    return Outcome(
        f"Sent ({len(res.message_ids)} copies) in conversation {conversation or '-'}.",
        {"message_ids": list(res.message_ids), "conversation_id": conversation, "duplicate": res.duplicate},
    )


async def read_conversation(call: Call, args: a.ReadConversation) -> Outcome:
    c = call.client
    if args.as_agent:  # its own messages: those it sent, and those it received
        pages = [
            c.iter_messages(
                conversation_id=args.conversation_id, sender_id=args.as_agent, fold_broadcasts=True
            ),
            c.iter_messages(conversation_id=args.conversation_id, recipient_id=args.as_agent),
        ]
    else:
        pages = [c.iter_messages(conversation_id=args.conversation_id, fold_broadcasts=True)]
    found: dict[str, m.Message] = {}
    for page in pages:
        async for x in page:
            found.setdefault(x.send_id or x.message_id, x)
            if len(found) >= args.limit:
                break
    ordered = sorted(found.values(), key=lambda x: (x.created_at is None, x.created_at, x.message_id))
    lines = [
        f"{x.sender_id} -> {x.recipient_id or x.target_capability or '*'}: "
        f"{v.value(x.payload, x.content_type)}"
        for x in ordered
    ]
    return Outcome(
        "\n".join(lines) or f"No message in conversation {args.conversation_id} is visible to you.",
        {"conversation_id": args.conversation_id, "messages": [v.message(x) for x in ordered]},
    )


# ---------------------------------------------------------------- sessions


async def create_session(call: Call, args: a.CreateSession) -> Outcome:
    s = await call.client.create_session(
        args.name, context=args.context, labels=args.labels, deadline=args.deadline, max_tasks=args.max_tasks
    )
    return Outcome(
        f"Created {v.session_line(s)}. Submit tasks with session_id {s.session_id}; close_session when "
        "no more will come.",
        {"session": v.session(s)},
    )


async def session_with_tasks(client: BrokerClient, session_id: str, limit: int) -> tuple[str, dict[str, Any]]:
    """A session and its tasks' states (shared by get_session and the session:// resource)."""
    s = await client.get_session(session_id)
    tasks: list[m.Task] = []
    async for t in client.iter_tasks(session_id=session_id, page_size=min(limit, MAX_PAGE)):
        tasks.append(t)
        if len(tasks) >= limit:
            break
    text = "\n".join([v.session_line(s), *(v.task_line(t) for t in tasks)])
    return text, {"session": v.session(s), "tasks": [v.task(t) for t in tasks]}


async def get_session(call: Call, args: a.GetSession) -> Outcome:
    text, data = await session_with_tasks(call.client, args.session_id, args.limit)
    return Outcome(text, data)


async def close_session(call: Call, args: a.CloseSession) -> Outcome:
    s = await call.client.close_session(args.session_id, summary=args.summary)
    return Outcome(f"Closed: {v.session_line(s)}.", {"session": v.session(s)})


TOOLS: dict[str, Tool] = {
    t.name: t
    for t in (
        Tool(
            "list_capabilities",
            "What the broker's agents can do: each capability with its description, how many agents "
            "have it and are online, and how many more tasks they can take right now. Start here to "
            "choose the capability of a task.",
            a.Empty,
            READ,
            list_capabilities,
        ),
        Tool(
            "list_agents",
            "The registered agents: their capabilities, state (available, busy, offline...), running "
            "tasks and free capacity.",
            a.ListAgents,
            READ,
            list_agents,
        ),
        Tool(
            "submit_task",
            "Hand a piece of work to the broker's agents: the task is queued durably and leased to an "
            "agent having its capability, retried on failure. Returns at once with the task id; then "
            "call wait_for_task for its result.",
            a.SubmitTask,
            CREATE,
            submit_task,
        ),
        Tool(
            "submit_graph",
            "Submit several tasks at once, all or none, where some wait for others (depends_on) or are "
            "subtasks of others (parent), naming each other by key. Returns every task's id.",
            a.SubmitGraph,
            CREATE,
            submit_graph,
        ),
        Tool(
            "wait_for_task",
            "Wait for a task to finish and return its result (or its error), reporting each change of "
            "state as progress. Never waits longer than timeout_s: if the task is still going it "
            "returns its current state, and you may call again.",
            a.WaitForTask,
            READ,
            wait_for_task,
        ),
        Tool(
            "get_task",
            "A task now: its state, agent, progress, result or error, and its history of state changes.",
            a.GetTask,
            READ,
            get_task,
        ),
        Tool(
            "list_tasks",
            "Find tasks by state, session, capability, agent, parent, tree, tag, label or creation time "
            "(every filter given must match). Newest last.",
            a.ListTasks,
            READ,
            list_tasks,
        ),
        Tool(
            "cancel_task",
            "Cancel a task that is not finished yet (with cascade: its subtasks too); a running one is "
            "stopped on its agent. It will produce no result.",
            a.CancelTask,
            DESTROY,
            cancel_task,
        ),
        Tool(
            "retry_task",
            "Run a failed or cancelled task again: a new task with the same input and fresh attempts.",
            a.RetryTask,
            CREATE,
            retry_task,
        ),
        Tool(
            "send_message",
            "Send a message as an agent: to one agent (direct), to one of the agents having a "
            "capability (anycast), or to all of them (broadcast); in a conversation, or as a reply.",
            a.SendMessage,
            CREATE,
            send_message,
        ),
        Tool(
            "read_conversation",
            "The messages of a conversation, oldest first: who sent what to whom.",
            a.ReadConversation,
            READ,
            read_conversation,
        ),
        Tool(
            "create_session",
            "Open a session to group related tasks (submit them with its session_id): its state and "
            "progress then sum up theirs. Close it once no more tasks will come.",
            a.CreateSession,
            CREATE,
            create_session,
        ),
        Tool(
            "get_session",
            "A session: its state, progress and context, with each of its tasks' state.",
            a.GetSession,
            READ,
            get_session,
        ),
        Tool(
            "close_session",
            "Say no more tasks will come: the session ends once its tasks have finished.",
            a.CloseSession,
            UPDATE,
            close_session,
        ),
    )
}
