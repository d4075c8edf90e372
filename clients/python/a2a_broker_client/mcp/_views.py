"""What the tools answer: compact JSON views of tasks, agents, sessions and messages (the fields a
model reasons with, payloads decoded), and the one-line texts beside them."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from .. import models as m
from ..cli._common import jsonable, payload_value

MAX_VALUE_CHARS = 50_000  # a payload or result longer than this (as JSON) is cut, and says so


def value(data: bytes, content_type: str) -> Any:
    """A payload or result as JSON: parsed JSON, text, or ``{"base64": ...}``; cut when huge."""
    v = payload_value(data, content_type)
    text = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
    if len(text) <= MAX_VALUE_CHARS:
        return v
    return {"truncated": text[:MAX_VALUE_CHARS], "total_chars": len(text)}


def _drop_empty(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v not in ("", None, [], {}, ())}


def task(t: m.Task, history: Iterable[m.TaskTransition] | None = None) -> dict[str, Any]:
    s = t.spec
    out = _drop_empty(
        {
            "task_id": t.task_id,
            "title": s.title,
            "status": t.status.value,
            "capabilities": list(s.required_capabilities),
            "priority": s.priority,
            "payload": value(s.payload, s.content_type) if isinstance(s.payload, bytes) else s.payload,
            "session_id": s.session_id,
            "parent_id": s.parent_id,
            "depends_on": [d if isinstance(d, str) else d.task_id for d in s.depends_on],
            "deadline": jsonable(s.deadline),
            "labels": dict(s.labels),
            "assigned_agent_id": t.assigned_agent_id,
            "attempt": t.attempt or None,
            "progress": t.progress or None,
            "status_note": t.status_note,
            "result": value(t.result, t.result_content_type) if t.result else None,
            "error": t.last_error,
            "created_at": jsonable(t.created_at),
            "finished_at": jsonable(t.finished_at),
        }
    )
    if history is not None:
        out["history"] = [transition(x) for x in history]
    return out


def transition(x: m.TaskTransition) -> dict[str, Any]:
    return _drop_empty(
        {
            "from": x.from_status.value if x.from_status is not None else "",
            "to": x.to_status.value,
            "reason": x.reason,
            "actor": x.actor,
            "attempt": x.attempt or None,
            "time": jsonable(x.time),
        }
    )


def task_line(t: m.Task) -> str:
    """One line: id, title, state, and the part a reader wants next (agent, error, result)."""
    line = f"{t.task_id} {t.spec.title!r}: {t.status.value}"
    if t.status is m.TaskStatus.RUNNING and t.assigned_agent_id:
        line += f" on {t.assigned_agent_id}"
        if t.progress:
            line += f" ({t.progress}%{', ' + t.status_note if t.status_note else ''})"
    if t.status is m.TaskStatus.FAILED and t.last_error:
        line += f": {t.last_error}"
    return line


RESULT_TEXT_CHARS = 8_000  # of a result in a tool's text (hosts show the model the text)


def result_text(t: m.Task) -> str:
    """A completed task's result for the text beside the structured content, cut when long."""
    v = value(t.result, t.result_content_type)
    text = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
    if len(text) > RESULT_TEXT_CHARS:
        text = text[:RESULT_TEXT_CHARS] + f"... (cut: read task://{t.task_id} for all of it)"
    return f"Result: {text}"


def agent(a: m.Agent) -> dict[str, Any]:
    return _drop_empty(
        {
            "agent_id": a.agent_id,
            "name": a.name,
            "type": a.agent_type,
            "status": a.status.value,
            "capabilities": list(a.capabilities),
            "capability_descriptions": dict(a.capability_descriptions),
            "running_tasks": a.current_task_count,
            "max_concurrent_tasks": a.max_concurrent_tasks,
            "free_capacity": free_capacity(a),
            "labels": dict(a.labels),
            "success_rate": a.record.success_rate if a.record and a.record.window else None,
            "last_heartbeat_at": jsonable(a.last_heartbeat_at),
        }
    )


def free_capacity(a: m.Agent) -> int:
    """Tasks the agent may take now, as the broker reckons it (broker/domain/capacity.py): none
    unless available or busy; at most what it reported in its last heartbeat."""
    if a.status not in (m.AgentStatus.AVAILABLE, m.AgentStatus.BUSY):
        return 0
    free = a.max_concurrent_tasks - a.current_task_count
    if a.reported_free_capacity is not None:
        free = min(free, a.reported_free_capacity)
    return max(free, 0)


def capabilities(agents: Iterable[m.Agent]) -> list[dict[str, Any]]:
    """Per capability: its description, how many agents have it, how many are online, and the
    tasks they may take now; most free capacity first."""
    rows: dict[str, dict[str, Any]] = {}
    for a in agents:
        online = a.status is not m.AgentStatus.OFFLINE
        for cap in a.capabilities:
            row = rows.setdefault(
                cap, {"capability": cap, "description": "", "agents": 0, "online": 0, "free_capacity": 0}
            )
            row["agents"] += 1
            row["online"] += online
            row["free_capacity"] += free_capacity(a)
            row["description"] = row["description"] or a.capability_descriptions.get(cap, "")
    return sorted(rows.values(), key=lambda r: (-r["free_capacity"], -r["online"], r["capability"]))


def session(s: m.Session) -> dict[str, Any]:
    return _drop_empty(
        {
            "session_id": s.session_id,
            "name": s.name,
            "status": s.status.value,
            "status_reason": s.status_reason,
            "task_counts": dict(s.task_counts),
            "progress": s.progress,
            "context": dict(s.context),
            "labels": dict(s.labels),
            "deadline": jsonable(s.deadline),
            "summary": s.summary,
            "created_at": jsonable(s.created_at),
            "closed_at": jsonable(s.closed_at),
            "finished_at": jsonable(s.finished_at),
        }
    )


def session_line(s: m.Session) -> str:
    counts = ", ".join(f"{n} {k}" for k, n in sorted(s.task_counts.items()) if n)
    return f"session {s.session_id} {s.name!r}: {s.status.value}" + (f" ({counts})" if counts else "")


def message(x: m.Message) -> dict[str, Any]:
    return _drop_empty(
        {
            "message_id": x.message_id,
            "from": x.sender_id,
            "to": x.recipient_id or (f"{x.target_kind.value}:{x.target_capability}"),
            "type": x.message_type,
            "payload": value(x.payload, x.content_type),
            "in_reply_to": x.in_reply_to,
            "status": x.status.value,
            "sent_at": jsonable(x.created_at),
            "recipients": [r for _, r, _ in x.recipients],
        }
    )
