"""Two prompts a host can offer its user: hand a request to the best agent, and sum up a session.
Each brings what the model needs to start (the capabilities on offer; the session and its tasks),
read with the caller's credentials, so that the model begins with facts rather than a lookup."""

from __future__ import annotations

import json

import mcp_types as types
from mcp.shared.exceptions import MCPError

from ..client import BrokerClient
from . import _views
from ._tools import session_with_tasks

PROMPTS = [
    types.Prompt(
        name="delegate",
        title="Delegate to the best agent",
        description="Hand a request to the broker's agent best able to do it, wait for the result and "
        "report it.",
        arguments=[types.PromptArgument(name="request", description="what is to be done", required=True)],
    ),
    types.Prompt(
        name="summarise_session",
        title="Summarise a session",
        description="Sum up a session: what its tasks achieved, what failed and why, what is still open.",
        arguments=[types.PromptArgument(name="session_id", description="the session", required=True)],
    ),
]


def _text(text: str) -> types.PromptMessage:
    return types.PromptMessage(role="user", content=types.TextContent(type="text", text=text))


async def get(client: BrokerClient, name: str, arguments: dict[str, str]) -> types.GetPromptResult:
    if name == "delegate":
        return await _delegate(client, _required(arguments, "request"))
    if name == "summarise_session":
        return await _summarise(client, _required(arguments, "session_id"))
    known = ", ".join(p.name for p in PROMPTS)
    raise MCPError(types.INVALID_PARAMS, f"unknown prompt {name!r}: the prompts are {known}")


def _required(arguments: dict[str, str], name: str) -> str:
    value = arguments.get(name, "").strip()
    if not value:
        raise MCPError(types.INVALID_PARAMS, f"argument '{name}': required")
    return value


async def _delegate(client: BrokerClient, request: str) -> types.GetPromptResult:
    agents = [a async for a in client.iter_agents()]
    offered = json.dumps(_views.capabilities(agents), ensure_ascii=False, indent=1)
    text = (
        f"Have this done by the broker's agents:\n\n{request}\n\n"
        f"The capabilities on offer now (agents online, tasks they can take now, description):\n{offered}\n\n"
        "Choose the capability that fits best (prefer one with free capacity). Call submit_task with a "
        "short title, that capability, and a payload holding everything the agent needs (it sees nothing "
        "else). Then call wait_for_task until it is finished, and report its result. If it failed, read "
        "the error: fix the payload and submit again, or retry_task if the failure looks transient. If "
        "no capability fits, say so instead of submitting."
    )
    return types.GetPromptResult(description=f"Delegate: {request[:80]}", messages=[_text(text)])


async def _summarise(client: BrokerClient, session_id: str) -> types.GetPromptResult:
    _, data = await session_with_tasks(client, session_id, 500)
    text = (
        f"Summarise session {session_id} for its owner, from the record below: what it set out to do, "
        "what its completed tasks produced, which tasks failed and why, and what is still pending or "
        "running. Be brief and concrete. If the session is still active and nothing more is to come, "
        "offer to close it with close_session and your summary.\n\n"
        + json.dumps(data, ensure_ascii=False, indent=1)
    )
    return types.GetPromptResult(description=f"Summary of session {session_id}", messages=[_text(text)])
