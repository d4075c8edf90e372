"""Helpers for an agent that runs tasks coming through the broker's A2A gateway.

A message sent to the gateway becomes a task whose payload (content type ``TURN_TYPE``) is the
A2A message as JSON with the conversation before it (:func:`turn`). The agent answers with
``Complete`` and a result with content type ``RESULT_TYPE`` saying how the A2A task stands:
done with artifacts, or waiting for the caller (``input-required`` with a question,
``auth-required``), or ``rejected``. A :class:`Worker` handler returns one of :func:`completed`,
:func:`input_required`, :func:`auth_required` or :func:`rejected`; with the plain client,
``outcome.encode()`` (or :func:`result`) gives the bytes and content type for ``complete()``.
Plain JSON, no A2A library needed: see docs/a2a-turns.md.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

TURN_TYPE = "application/vnd.a2a-broker.turn+json"
RESULT_TYPE = "application/vnd.a2a-broker.result+json"
STATES = ("completed", "input-required", "auth-required", "rejected")

JSONDict = dict[str, Any]


def turn(payload: bytes) -> JSONDict:
    """The turn a task carries: ``{"message": ..., "history": [...], "contextId": ...}``."""
    doc: JSONDict = json.loads(payload)
    return doc


def text_of(message: JSONDict) -> str:
    """The text parts of an A2A message (as JSON), joined."""
    return "\n".join(p["text"] for p in message.get("parts", []) if "text" in p)


def agent_message(text: str) -> JSONDict:
    """An A2A message from the agent with one text part (and a fresh message id)."""
    return {"messageId": str(uuid.uuid4()), "role": "ROLE_AGENT", "parts": [{"text": text}]}


def artifact(
    text: str | None = None,
    *,
    name: str = "result",
    data: Any = None,
    parts: Sequence[JSONDict] = (),
    artifact_id: str = "",
    description: str = "",
) -> JSONDict:
    """An A2A artifact: a text part, a JSON ``data`` part, and/or the given ``parts``."""
    all_parts: list[JSONDict] = []
    if text is not None:
        all_parts.append({"text": text})
    if data is not None:
        all_parts.append({"data": data})
    all_parts.extend(parts)
    art: JSONDict = {"artifactId": artifact_id or str(uuid.uuid4()), "name": name, "parts": all_parts}
    if description:
        art["description"] = description
    return art


@dataclass(frozen=True)
class Outcome:
    """How an A2A turn ends: a state, the agent's message (optional) and artifacts. Return one
    from a :class:`Worker` handler; ``encode()`` gives ``(result, result_content_type)``."""

    state: str
    message: JSONDict | None = None
    artifacts: list[JSONDict] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.state not in STATES:
            raise ValueError(f"state must be one of {', '.join(STATES)}, not {self.state!r}")

    def encode(self) -> tuple[bytes, str]:
        return _encode(self.state, self.message, self.artifacts)


def _encode(state: str, message: JSONDict | None, artifacts: Sequence[JSONDict]) -> tuple[bytes, str]:
    doc: JSONDict = {"state": state}
    if message is not None:
        doc["message"] = message
    if artifacts or state == "completed":
        doc["artifacts"] = list(artifacts)
    return json.dumps(doc).encode(), RESULT_TYPE


def _message(text: str | JSONDict | None) -> JSONDict | None:
    return agent_message(text) if isinstance(text, str) else text


def completed(
    text: str = "",
    *,
    artifacts: Sequence[JSONDict] = (),
    name: str = "result",
    message: str | JSONDict | None = None,
) -> Outcome:
    """Done: ``text`` (when given) becomes an artifact named ``name``, after ``artifacts``;
    ``message`` an optional reply shown as the task's status message."""
    arts = list(artifacts) + ([artifact(text, name=name)] if text else [])
    return Outcome("completed", _message(message), arts)


def input_required(question: str | JSONDict, *, artifacts: Sequence[JSONDict] = ()) -> Outcome:
    """Ask the caller (``question``: text or an A2A message) and wait without holding a slot: the
    answer comes as a new turn, a child task, with the conversation so far in its history."""
    return Outcome("input-required", _message(question), list(artifacts))


def auth_required(text: str | JSONDict, *, artifacts: Sequence[JSONDict] = ()) -> Outcome:
    """The caller must authenticate (``text`` says how) before the task can go on."""
    return Outcome("auth-required", _message(text), list(artifacts))


def rejected(reason: str | JSONDict) -> Outcome:
    """The agent will not do this task (a final state), saying why."""
    return Outcome("rejected", _message(reason))


def result(
    text: str = "",
    *,
    state: str = "completed",
    artifacts: list[JSONDict] | None = None,
    name: str = "result",
) -> tuple[bytes, str]:
    """A result for ``complete(..., result, result_content_type=...)``: with ``state``
    "completed", ``text`` becomes an artifact named ``name``; with "input-required" (or
    "auth-required", "rejected") it is the agent's message to the caller (a question)."""
    if state == "completed":
        arts = list(artifacts or [])
        if text:
            arts.append({"artifactId": name, "name": name, "parts": [{"text": text}]})
        return _encode(state, None, arts)
    return _encode(state, agent_message(text) if text else None, artifacts or [])
