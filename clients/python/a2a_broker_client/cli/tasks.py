"""``a2a-broker tasks submit|get|list|tree|deps|history|cancel|watch``."""

from __future__ import annotations

import argparse
import json
from functools import partial
from typing import Any

from ..client import BrokerClient
from ..models import (
    Dependency,
    DependencyType,
    GraphDependency,
    GraphNode,
    RetryPolicy,
    Task,
    TaskEvent,
    TaskSpec,
    TaskStatus,
)
from ._common import (
    UsageError,
    duration,
    fields_table,
    key_values,
    limited,
    paging_options,
    parse_time,
    payload_text,
    positive_duration,
    positive_int,
    print_json,
    read_payload,
    runner,
    short,
    table,
    take,
    time_or_delay,
    when,
)

STATUSES = [s.value for s in TaskStatus if s is not TaskStatus.UNSPECIFIED]


def add(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "tasks", help="submit, inspect and cancel tasks", description="Submit, inspect and cancel tasks."
    )
    s = p.add_subparsers(dest="tasks_command", required=True)

    sb = s.add_parser(
        "submit",
        parents=[common],
        help="submit a task (or a graph with --graph)",
        description="Submit one task, or with --graph FILE a whole DAG from JSON "
        "(see clients/python/README.md). PAYLOAD is text, '-' for stdin, or '@path' for a file.",
    )
    sb.add_argument("title", nargs="?", help="the task's title")
    sb.add_argument("--graph", metavar="FILE", help="submit the task graph in this JSON file ('-': stdin)")
    sb.add_argument("--payload", default=None)
    sb.add_argument("--content-type", default="")
    sb.add_argument("--type", dest="task_type", default="")
    sb.add_argument(
        "--capability", dest="capabilities", action="append", default=[], help="required; repeatable"
    )
    sb.add_argument("--priority", type=int, default=None, help="0-10, higher first (default 5)")
    sb.add_argument("--deadline", type=parse_time, default=None, help="ISO 8601")
    sb.add_argument(
        "--not-before",
        type=time_or_delay,
        default=None,
        help="ISO 8601 or +DURATION: held pending until then",
    )
    sb.add_argument("--parent", default="", help="parent task id")
    sb.add_argument(
        "--depends-on", action="append", default=[], metavar="TASK_ID[:soft|:optional]", help="repeatable"
    )
    sb.add_argument("--max-retries", type=int, default=None)
    sb.add_argument(
        "--lease-timeout",
        type=positive_duration,
        default=None,
        metavar="DURATION",
        help="90s, 5m... (default 60s)",
    )
    sb.add_argument("--session", default="")
    sb.add_argument("--tag", dest="tags", action="append", default=[], help="repeatable")
    sb.add_argument(
        "--label", dest="labels", action="append", default=[], metavar="KEY=VALUE", help="repeatable"
    )
    sb.add_argument("--idempotency-key", default="")
    sb.add_argument("--concurrency-key", default="", help="a tenant, user or resource (see `limits`)")
    sb.add_argument("--submitted-by", default="cli")
    sb.set_defaults(func=runner(_submit))

    get = s.add_parser("get", parents=[common], help="show one task")
    get.add_argument("task_id")
    get.set_defaults(func=runner(_get))

    ls = s.add_parser("list", parents=[common], help="list tasks")
    ls.add_argument("--status", choices=STATUSES)
    ls.add_argument("--session", default="")
    ls.add_argument("--capability", default="", help="tasks requiring this capability")
    ls.add_argument("--agent", default="", help="tasks leased to this agent")
    ls.add_argument("--tag", default="")
    ls.add_argument("--label", default="", metavar="KEY=VALUE", help="tasks carrying this label")
    ls.add_argument("--parent", default="")
    ls.add_argument("--type", dest="task_type", default="", help="of this task_type")
    ls.add_argument("--root", default="", help="the whole tree under this root task")
    ls.add_argument("--level", type=int, default=None, help="at this depth (0: roots)")
    ls.add_argument("--since", type=parse_time, help="submitted at or after (ISO 8601)")
    ls.add_argument("--until", type=parse_time, help="submitted before (ISO 8601)")
    paging_options(ls, 100)
    ls.set_defaults(func=runner(_list))

    tr = s.add_parser("tree", parents=[common], help="show a task and its descendants")
    tr.add_argument("task_id")
    tr.set_defaults(func=runner(_tree))

    de = s.add_parser(
        "deps",
        parents=[common],
        help="show what a task waits on, and what waits on it; edit a task not started",
        description="Show a task's prerequisites and dependents. With --add or --remove, first edit"
        " the prerequisites of a task that has not started.",
    )
    de.add_argument("task_id")
    de.add_argument(
        "--add", action="append", default=[], metavar="TASK_ID[:soft|:optional]", help="repeatable"
    )
    de.add_argument("--remove", action="append", default=[], metavar="TASK_ID", help="repeatable")
    de.set_defaults(func=runner(_deps))

    hi = s.add_parser("history", parents=[common], help="show a task's state transitions")
    hi.add_argument("task_id")
    hi.set_defaults(func=runner(_history))

    ca = s.add_parser("cancel", parents=[common], help="cancel a task")
    ca.add_argument("task_id")
    ca.add_argument("--cascade", action="store_true", help="also cancel its descendants")
    ca.add_argument("--reason", default="cancelled from the command line")
    ca.set_defaults(func=runner(_cancel))

    rt = s.add_parser(
        "retry", parents=[common], help="submit a failed or cancelled task again, as a new task"
    )
    rt.add_argument("task_id")
    rt.set_defaults(func=runner(_retry))

    w = s.add_parser(
        "watch",
        parents=[common],
        help="follow task state changes",
        description="Print state changes of a task, a subtree or a session as they happen.",
    )
    scope = w.add_mutually_exclusive_group(required=True)
    scope.add_argument("--task", default="", help="one task")
    scope.add_argument("--subtree", default="", help="a task and all its descendants")
    scope.add_argument("--session", default="", help="every task of a session")
    w.add_argument(
        "--until-finished",
        action="store_true",
        help="exit once the --task (or --subtree root) is completed, failed or cancelled",
    )
    w.add_argument("--snapshot", action="store_true", help="first print each task of the scope as it is now")
    w.add_argument("--count", type=positive_int, default=None, help="exit after this many events")
    w.add_argument("--timeout", type=duration, default=None, metavar="DURATION", help="exit after this long")
    w.set_defaults(func=runner(_watch))


HEADERS = ["TASK", "STATUS", "TITLE", "PRI", "ATTEMPT", "AGENT", "PROGRESS", "CREATED (UTC)"]


def _row(t: Task) -> list[Any]:
    return [
        t.task_id,
        t.status.value,
        short(t.title, 40),
        t.spec.priority if t.spec.priority is not None else 5,
        t.attempt,
        t.assigned_agent_id,
        f"{t.progress}%",
        when(t.created_at),
    ]


def _dependency(text: str, flag: str = "--depends-on") -> Dependency:
    task_id, _, kind = text.partition(":")
    if kind not in ("", "hard", "soft", "optional"):
        raise UsageError(f"{flag} wants TASK_ID[:hard|:soft|:optional], not {text!r}")
    return Dependency(task_id, DependencyType(kind or "hard"))


async def _submit(client: BrokerClient, ns: argparse.Namespace) -> int:
    if ns.graph:
        if ns.title:
            raise UsageError("give a TITLE or --graph, not both")
        return await _submit_graph(client, ns)
    if not ns.title:
        raise UsageError("a TITLE (or --graph FILE) is required")
    payload, content_type = read_payload(ns.payload, ns.content_type)
    retry = RetryPolicy(max_retries=ns.max_retries) if ns.max_retries is not None else None
    spec = TaskSpec(
        title=ns.title,
        task_type=ns.task_type,
        payload=payload,
        content_type=content_type,
        required_capabilities=ns.capabilities,
        priority=ns.priority,
        deadline=ns.deadline,
        not_before=ns.not_before,
        parent_id=ns.parent,
        depends_on=[_dependency(d) for d in ns.depends_on],
        retry=retry,
        lease_timeout=ns.lease_timeout,
        session_id=ns.session,
        tags=ns.tags,
        labels=key_values(ns.labels, "--label"),
        idempotency_key=ns.idempotency_key,
        concurrency_key=ns.concurrency_key,
        submitted_by=ns.submitted_by,
    )
    res = await client.submit(spec)
    if ns.json:
        print_json(res)
    else:
        print(
            f"{res.task.task_id}  {res.task.status.value}"
            + ("  (duplicate: nothing new stored)" if res.duplicate else "")
        )
    return 0


def graph_from_json(doc: Any, submitted_by: str = "cli") -> list[GraphNode]:
    """Graph nodes from JSON: a list (or ``{"nodes": [...]}``) of objects with ``key``, ``title``,
    optional ``depends_on`` (keys, or ``{"key", "type"}``), ``parent`` (a key), and TaskSpec fields
    (``task_type``, ``payload``, ``content_type``, ``required_capabilities``, ``priority``,
    ``session_id``, ``tags``, ``metadata``, ``lease_timeout``, ``max_retries``, ``idempotency_key``,
    ``concurrency_key``)."""
    nodes = doc.get("nodes") if isinstance(doc, dict) else doc
    if not isinstance(nodes, list) or not nodes:
        raise UsageError('a graph is a non-empty JSON list of nodes (or {"nodes": [...]})')
    allowed = {
        "task_type",
        "payload",
        "content_type",
        "required_capabilities",
        "priority",
        "session_id",
        "tags",
        "metadata",
        "lease_timeout",
        "idempotency_key",
        "concurrency_key",
        "parent_id",
    }
    out = []
    for i, n in enumerate(nodes):
        if not isinstance(n, dict) or "key" not in n or "title" not in n:
            raise UsageError(f'graph node {i}: needs at least "key" and "title"')
        extra = set(n) - allowed - {"key", "title", "depends_on", "parent", "max_retries"}
        if extra:
            raise UsageError(f"graph node {n['key']!r}: unknown field(s) {sorted(extra)}")
        deps = []
        for d in n.get("depends_on", []):
            if isinstance(d, str):
                deps.append(GraphDependency(d))
            else:
                deps.append(GraphDependency(d["key"], DependencyType(d.get("type", "hard"))))
        fields = {k: v for k, v in n.items() if k in allowed}
        if "max_retries" in n:
            fields["retry"] = RetryPolicy(max_retries=n["max_retries"])
        spec = TaskSpec(title=n["title"], submitted_by=submitted_by, **fields)
        out.append(GraphNode(key=n["key"], spec=spec, depends_on_keys=deps, parent_key=n.get("parent", "")))
    return out


async def _submit_graph(client: BrokerClient, ns: argparse.Namespace) -> int:
    data, _ = read_payload(ns.graph if ns.graph == "-" else "@" + ns.graph, "application/json")
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise UsageError(f"{ns.graph}: not JSON: {exc}") from None
    res = await client.submit_graph(graph_from_json(doc, ns.submitted_by))
    if ns.json:
        print_json(res)
    else:
        keys = {v: k for k, v in res.task_ids.items()}
        table(
            ["KEY", "TASK", "STATUS", "TITLE"],
            [[keys.get(t.task_id, ""), t.task_id, t.status.value, short(t.title)] for t in res.tasks],
        )
    return 0


async def _get(client: BrokerClient, ns: argparse.Namespace) -> int:
    t = await client.get_task(ns.task_id)
    if ns.json:
        print_json(t)
        return 0
    s = t.spec
    fields_table(
        [
            ("task_id", t.task_id),
            ("title", s.title),
            ("type", s.task_type),
            ("status", t.status),
            (
                "priority",
                f"{s.priority if s.priority is not None else 5} (calculated {t.calculated_priority:.2f})",
            ),
            ("capabilities", s.required_capabilities),
            (
                "depends on",
                [f"{d.task_id}:{d.type.value}" for d in s.depends_on if isinstance(d, Dependency)],
            ),
            ("parent", s.parent_id),
            ("root", t.root_id),
            ("level", t.level),
            ("session", s.session_id),
            ("tags", s.tags),
            ("labels", [f"{k}={v}" for k, v in s.labels.items()]),
            ("attempt", t.attempt),
            ("agent", t.assigned_agent_id),
            ("lease expires", t.lease_expires_at),
            ("progress", f"{t.progress}%"),
            ("status note", t.status_note),
            ("payload", payload_text(bytes(s.payload), s.content_type, 200)),
            ("result", payload_text(t.result, t.result_content_type, 200)),
            ("last error", t.last_error),
            ("next attempt", t.next_attempt_at),
            ("deadline", s.deadline),
            ("not before", s.not_before),
            ("created", t.created_at),
            ("started", t.started_at),
            ("finished", t.finished_at),
        ]
    )
    return 0


async def _list(client: BrokerClient, ns: argparse.Namespace) -> int:
    tasks: list[Task] = await take(
        partial(
            client.list_tasks,
            status=ns.status,
            session_id=ns.session,
            capability=ns.capability,
            agent_id=ns.agent,
            tag=ns.tag,
            label=ns.label,
            parent_id=ns.parent,
            task_type=ns.task_type,
            root_id=ns.root,
            level=ns.level,
            created_after=ns.since,
            created_before=ns.until,
        ),
        ns,
    )
    if ns.json:
        print_json(tasks)
    else:
        table(HEADERS, [_row(t) for t in tasks], empty="(no tasks)")
    return 0


async def _tree(client: BrokerClient, ns: argparse.Namespace) -> int:
    tree = await client.get_tree(ns.task_id)
    if ns.json:
        print_json(tree)
        return 0
    base = tree.tasks[0].level if tree.tasks else 0
    table(
        ["TASK", "STATUS", "PROGRESS", "AGENT", "TITLE"],
        [
            [
                t.task_id,
                t.status.value,
                f"{t.progress}%",
                t.assigned_agent_id,
                "  " * (t.level - base) + short(t.title, 50),
            ]
            for t in tree.tasks
        ],
    )
    counts = ", ".join(f"{s.value} {n}" for s, n in sorted(tree.status_counts.items()) if n)
    print(f"\n{len(tree.tasks)} tasks: {counts or '-'}; progress {tree.progress:.0f}%")
    return 0


async def _deps(client: BrokerClient, ns: argparse.Namespace) -> int:
    for text in ns.add:
        d = _dependency(text, "--add")
        await client.add_dependency(ns.task_id, d.task_id, d.type, actor="cli")
    for prereq in ns.remove:
        await client.remove_dependency(ns.task_id, prereq, actor="cli")
    prereqs, dependents = await client.get_dependencies(ns.task_id)
    if ns.json:
        print_json({"prerequisites": prereqs, "dependents": dependents})
        return 0
    rows = [
        [
            "waits on",
            e.task_id,
            e.type.value,
            e.status.value,
            "yes" if e.blocking else "",
            when(e.resolved_at),
            short(e.title),
        ]
        for e in prereqs
    ] + [
        ["needed by", e.task_id, e.type.value, e.status.value, "", when(e.resolved_at), short(e.title)]
        for e in dependents
    ]
    table(
        ["", "TASK", "TYPE", "STATUS", "BLOCKS", "RESOLVED (UTC)", "TITLE"], rows, empty="(no dependencies)"
    )
    return 0


async def _history(client: BrokerClient, ns: argparse.Namespace) -> int:
    hist = await client.get_history(ns.task_id)
    if ns.json:
        print_json(hist)
        return 0
    table(
        ["TIME (UTC)", "FROM", "TO", "ATTEMPT", "ACTOR", "REASON"],
        [
            [
                when(h.time),
                h.from_status.value if h.from_status is not None else "-",
                h.to_status.value,
                h.attempt,
                h.actor,
                short(h.reason, 60),
            ]
            for h in hist
        ],
        empty="(no history)",
    )
    return 0


async def _retry(client: BrokerClient, ns: argparse.Namespace) -> int:
    task = await client.replay(ns.task_id, actor="cli")
    if ns.json:
        print_json(task)
    else:
        print(f"replayed {ns.task_id} as {task.task_id} ({task.status})")
    return 0


async def _cancel(client: BrokerClient, ns: argparse.Namespace) -> int:
    ids = await client.cancel(ns.task_id, cascade=ns.cascade, reason=ns.reason, actor="cli")
    if ns.json:
        print_json({"cancelled_task_ids": ids})
    else:
        print(f"cancelled {len(ids)} task{'s' if len(ids) != 1 else ''}")
        for i in ids:
            print(f"  {i}")
    return 0


async def _watch(client: BrokerClient, ns: argparse.Namespace) -> int:
    if ns.until_finished and ns.session:
        raise UsageError("--until-finished needs --task or --subtree")
    target = ns.task or ns.subtree
    # --until-finished needs the current state first (a snapshot), so that a task that
    # finished before the watch started is noticed and nothing falls in between.
    stream = client.watch_tasks(
        task_id=ns.task,
        subtree_root_id=ns.subtree,
        session_id=ns.session,
        include_snapshot=ns.snapshot or ns.until_finished,
    )
    ev: TaskEvent
    async for ev in limited(stream, ns.count, ns.timeout):
        if ev.session is not None:  # the watched session ended
            if ns.json:
                print_json(ev, line=True)
            else:
                s = ev.session
                print(
                    f"{when(s.finished_at)}  session {s.session_id} {s.status.value} ({s.status_reason})",
                    flush=True,
                )
            continue
        tr = ev.transition
        status = ev.task.status if ev.task is not None else tr.to_status
        done = ns.until_finished and tr.task_id == target and status.finished
        # Snapshot events are shown with --snapshot, or when the target had already finished.
        if ns.snapshot or not ev.snapshot or done:
            _print_event(ns, ev)
        if done:
            break
    return 0


def _print_event(ns: argparse.Namespace, ev: TaskEvent) -> None:
    tr = ev.transition
    if ns.json:
        print_json(ev, line=True)
        return
    frm = tr.from_status.value if tr.from_status is not None else "-"
    title = f"  {short(ev.task.title, 30)}" if ev.task else ""
    print(
        f"{when(tr.time)}  {tr.task_id}  {frm} -> {tr.to_status.value}  attempt={tr.attempt}"
        f"  actor={tr.actor or '-'}{title}"
        + (f"  ({short(tr.reason, 60)})" if tr.reason else "")
        + ("  [snapshot]" if ev.snapshot else ""),
        flush=True,
    )
