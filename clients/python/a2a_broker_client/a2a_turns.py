"""Helpers for an agent that runs tasks coming through the broker's A2A gateway.

A message sent to the gateway becomes a task whose payload (content type ``TURN_TYPE``) is the
A2A message as JSON with the conversation before it; the agent answers with ``Complete`` and a
result made by :func:`result` (content type ``RESULT_TYPE``), which says whether the task is done
or waits for the caller (``input-required``), with an optional message and artifacts. Plain JSON,
no A2A library needed: see "Speaking A2A" in the broker's README.
"""

from __future__ import annotations

import json
from typing import Any

TURN_TYPE = "application/vnd.a2a-broker.turn+json"
RESULT_TYPE = "application/vnd.a2a-broker.result+json"


def turn(payload: bytes) -> dict[str, Any]:
    """The turn a task carries: ``{"message": ..., "history": [...], "contextId": ...}``."""
    doc: dict[str, Any] = json.loads(payload)
    return doc


def text_of(message: dict[str, Any]) -> str:
    """The text parts of an A2A message (as JSON), joined."""
    return "\n".join(p["text"] for p in message.get("parts", []) if "text" in p)


def result(
    text: str = "",
    *,
    state: str = "completed",
    artifacts: list[dict[str, Any]] | None = None,
    name: str = "result",
) -> tuple[bytes, str]:
    """A result for ``complete(..., result, result_content_type=...)``: with ``state``
    "completed", ``text`` becomes an artifact named ``name``; with "input-required" (or
    "auth-required", "rejected") it is the agent's message to the caller (a question)."""
    doc: dict[str, Any] = {"state": state}
    if state == "completed":
        arts = list(artifacts or [])
        if text:
            arts.append({"artifactId": name, "name": name, "parts": [{"text": text}]})
        doc["artifacts"] = arts
    else:
        if text:
            doc["message"] = {"messageId": f"{state}-reply", "role": "ROLE_AGENT", "parts": [{"text": text}]}
        if artifacts:
            doc["artifacts"] = artifacts
    return json.dumps(doc).encode(), RESULT_TYPE
