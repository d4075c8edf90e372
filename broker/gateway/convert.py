"""A2A protobuf <-> broker tasks: the payload a turn carries, the result a worker returns, and the
A2A ``Task`` a tree of turns reads as (its states: ``broker.domain.a2a_tasks``).

What a worker sees (the task's payload, content type ``TURN_TYPE``), as JSON::

    {"message": <A2A Message>, "history": [<A2A Message>, ...], "contextId": "..."}

``message`` is what the caller sent for this turn; ``history`` the messages before it (the caller's
and the agents'), oldest first. The A2A task's id is the broker task's own id for its first turn,
and its ``parent_id`` for the later ones. What a worker returns (``Complete`` with content type
``RESULT_TYPE``; both in protobuf's JSON form)::

    {"state": "completed" | "input-required" | "auth-required" | "rejected",
     "message": <A2A Message, optional: e.g. the question>, "artifacts": [<A2A Artifact>, ...]}

Any other result is one artifact: a text part when its content type is text (``text/*``, JSON, or
none and valid UTF-8), else a raw part with the content type as its media type.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from a2a.types import a2a_pb2 as a2a
from google.protobuf import json_format

from ..domain import a2a_tasks as rules
from ..models.tasks import Task, TaskSpecInput, TaskStatus

TURN_TYPE = "application/vnd.a2a-broker.turn+json"
RESULT_TYPE = "application/vnd.a2a-broker.result+json"
MAX_TITLE = 200


def turn_payload(message: a2a.Message, history: list[a2a.Message], context_id: str) -> bytes:
    doc = {
        "message": json_format.MessageToDict(message),
        "history": [json_format.MessageToDict(m) for m in history],
        "contextId": context_id,
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def turn_spec(
    message: a2a.Message, owner: str, key: str, context_id: str, history: list[a2a.Message], **place: Any
) -> TaskSpecInput:
    """The task a caller's message becomes (``place``: its capabilities, and its parent or its
    session)."""
    return TaskSpecInput(
        title=title_of(message),
        task_type=rules.TASK_TYPE,
        payload=turn_payload(user_message(message, context_id), history, context_id),
        content_type=TURN_TYPE,
        labels={rules.OWNER_LABEL: owner},
        idempotency_key=key,
        submitted_by=owner,
        **place,
    )


def title_of(message: a2a.Message) -> str:
    """A task title from the message's first text part (or its id)."""
    for p in message.parts:
        if p.WhichOneof("content") == "text" and p.text.strip():
            text = " ".join(p.text.split())
            return text if len(text) <= MAX_TITLE else text[: MAX_TITLE - 1] + "…"
    return f"A2A message {message.message_id}"


def skills_of(request: a2a.SendMessageRequest) -> list[str]:
    """The skills named in the message's metadata, else the request's ("skill": a name, or
    "skills": a list of names)."""
    for meta in (request.message.metadata, request.metadata):
        found = json_format.MessageToDict(meta)
        for key in rules.SKILL_KEYS:
            value = found.get(key)
            if isinstance(value, str) and value:
                return [value]
            if isinstance(value, list) and value:
                return [str(v) for v in value]
    return []


def agent_of(request: a2a.SendMessageRequest) -> str:
    """The agent named in the message's metadata, else the request's ("agent"), or ""."""
    for meta in (request.message.metadata, request.metadata):
        value = json_format.MessageToDict(meta).get(rules.AGENT_KEY)
        if isinstance(value, str) and value:
            return value
    return ""


@dataclass
class Turn:
    """One broker task of an A2A task, as the caller and the agent see it."""

    task: Task
    message: a2a.Message  # what the caller sent
    reply: a2a.Message | None = None  # what the agent said back (a question, an error...)
    artifacts: list[a2a.Artifact] = field(default_factory=list)
    declared: str | None = None  # the state its result declared

    @property
    def state(self) -> str:
        return rules.state_of(self.task.status, self.declared)


def read_turn(task: Task) -> Turn:
    message = a2a.Message()
    try:
        doc = json.loads(task.payload)
        json_format.ParseDict(doc.get("message", {}), message, ignore_unknown_fields=True)
    except (ValueError, json_format.ParseError):
        message.parts.add(text=task.payload.decode("utf-8", "replace"))
    turn = Turn(task, message)
    if task.status is TaskStatus.COMPLETED:
        _read_result(turn, task)
    elif task.status is TaskStatus.FAILED and task.last_error:
        turn.reply = _agent_text(task, task.last_error)
    elif task.status is TaskStatus.CANCELLED and task.last_error:
        turn.reply = _agent_text(task, task.last_error)
    return turn


def _read_result(turn: Turn, task: Task) -> None:
    result, ctype = task.result or b"", task.result_content_type
    if ctype == RESULT_TYPE:
        try:
            doc = json.loads(result)
        except ValueError:
            doc = None
        if isinstance(doc, dict):
            turn.declared = doc.get("state") if isinstance(doc.get("state"), str) else None
            if isinstance(doc.get("message"), dict):
                reply = a2a.Message()
                json_format.ParseDict(doc["message"], reply, ignore_unknown_fields=True)
                _as_agent(reply, task)
                turn.reply = reply
            for i, art in enumerate(doc.get("artifacts") or []):
                artifact = a2a.Artifact()
                json_format.ParseDict(art, artifact, ignore_unknown_fields=True)
                artifact.artifact_id = artifact.artifact_id or f"{task.task_id}-{i}"
                turn.artifacts.append(artifact)
            return
    if not result:
        return
    artifact = a2a.Artifact(artifact_id=f"{task.task_id}-0", name="result")
    text = _text(result, ctype)
    if text is not None:
        artifact.parts.add(text=text, media_type=ctype)
    else:
        artifact.parts.add(raw=result, media_type=ctype or "application/octet-stream")
    turn.artifacts.append(artifact)


def _text(data: bytes, ctype: str) -> str | None:
    textual = ctype.startswith("text/") or ctype.endswith("json") or not ctype
    if not textual:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _as_agent(message: a2a.Message, task: Task) -> None:
    message.role = a2a.ROLE_AGENT
    message.message_id = message.message_id or f"{task.task_id}-reply"


def _agent_text(task: Task, text: str) -> a2a.Message:
    m = a2a.Message(role=a2a.ROLE_AGENT, message_id=f"{task.task_id}-status")
    m.parts.add(text=text)
    return m


def a2a_task(turns: list[Turn], history_length: int | None = None, artifacts: bool = True) -> a2a.Task:
    """The A2A task a root turn and its later turns read as."""
    root, latest = turns[0].task, turns[-1]
    out = a2a.Task(id=root.task_id, context_id=root.session_id or "")
    out.status.state = a2a.TaskState.Value(latest.state)  # type: ignore[assignment]
    out.status.timestamp.FromMicroseconds(latest.task.updated_at)
    if latest.reply is not None:
        out.status.message.CopyFrom(latest.reply)
    if artifacts:
        for t in turns:
            out.artifacts.extend(t.artifacts)
    history = history_of(turns)
    if history_length is not None:
        history = history[-history_length:] if history_length else []
    out.history.extend(history)
    return out


def history_of(turns: list[Turn]) -> list[a2a.Message]:
    """Every message of the turns, oldest first: each caller's message, then the agent's reply."""
    out: list[a2a.Message] = []
    for t in turns:
        out.append(t.message)
        if t.reply is not None:
            out.append(t.reply)
    return out


def user_message(message: a2a.Message, context_id: str) -> a2a.Message:
    """The caller's message as stored: role user, in the context it went into."""
    m = a2a.Message()
    m.CopyFrom(message)
    m.role = a2a.ROLE_USER
    m.context_id = context_id
    return m
