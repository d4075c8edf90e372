"""``a2a-broker a2a send|get|cancel|card``: talk to any A2A agent, the broker's gateway by default.

Uses a2a-sdk's client (``pip install 'a2a-broker-client[a2a]'``; ``make`` installs it). Without
``--agent-url`` the calls go to the broker's own gateway (``--address``, gRPC, with ``--token``
and ``--ca`` as for every command); with it, the agent card is read from
``URL/.well-known/agent-card.json`` and the client uses whichever binding (gRPC, JSON-RPC, REST)
the card offers.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import uuid
from typing import Any

import grpc

from .. import loop as event_loop
from ..security import Security
from ._common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_TASK_FAILED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    connection,
    error,
    print_json,
    resolve_address,
    unreachable,
)

BINDINGS = ["GRPC", "JSONRPC", "HTTP+JSON"]


def add(subparsers: Any, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "a2a",
        help="call an A2A agent (the broker's gateway by default)",
        description="Speak the Agent2Agent protocol: to the broker's gateway (--address), or to any"
        " A2A agent whose card is at --agent-url.",
    )
    s = p.add_subparsers(dest="a2a_command", required=True)
    agent = argparse.ArgumentParser(add_help=False)
    agent.add_argument(
        "--agent-url", default="", help="base URL of an A2A agent's card (default: the broker)"
    )

    sd = s.add_parser("send", parents=[common, agent], help="send a message; print the task (or the answer)")
    sd.add_argument("text", help="the message's text ('-': stdin)")
    sd.add_argument("--skill", action="append", default=[], help="the skill to run (repeatable)")
    sd.add_argument("--task", default="", help="answer this task (one waiting for input)")
    sd.add_argument("--context", default="", help="the conversation (context id) to send into")
    sd.add_argument(
        "--message-id", default="", help="default: a new UUID (a retry with the same id is the same task)"
    )
    sd.add_argument("--no-wait", action="store_true", help="answer once the task is submitted")
    sd.add_argument("--stream", action="store_true", help="print each event as it happens")
    sd.set_defaults(func=_run(_send))

    g = s.add_parser("get", parents=[common, agent], help="show an A2A task")
    g.add_argument("task_id")
    g.set_defaults(func=_run(_get))

    c = s.add_parser("cancel", parents=[common, agent], help="cancel an A2A task")
    c.add_argument("task_id")
    c.set_defaults(func=_run(_cancel))

    cd = s.add_parser("card", parents=[common, agent], help="print the agent card")
    cd.set_defaults(func=_run(_card))


def _run(command: Any) -> Any:
    def run(ns: argparse.Namespace) -> int:
        try:
            import a2a.client  # noqa: F401
        except ImportError:
            error("the a2a commands need a2a-sdk: pip install 'a2a-broker-client[a2a]'")
            return EXIT_USAGE
        from a2a.client.errors import A2AClientError

        connection(ns)
        if ns.agent_url:
            address = ""
        elif (found := resolve_address(ns)) is not None:
            address = found
        else:
            return EXIT_USAGE
        try:
            return int(event_loop.run(command(ns, address)) or EXIT_OK)
        except A2AClientError as exc:
            text = str(exc)
            if not ("UNAVAILABLE" in text or "DEADLINE_EXCEEDED" in text or "connect" in text.lower()):
                error(f"the agent refused: {text}")
                return EXIT_REFUSED
            code = "DEADLINE_EXCEEDED" if "DEADLINE_EXCEEDED" in text else "UNAVAILABLE"
            error(unreachable(address, code, text, ns) if address else f"cannot reach the agent: {text}")
            return EXIT_UNREACHABLE
        except ValueError as exc:  # e.g. a client certificate without its key
            error(str(exc))
            return EXIT_USAGE
        except Exception as exc:  # the SDK's errors (A2AError) and HTTP failures of the card
            if type(exc).__module__.startswith(("a2a.", "httpx")):
                error(f"the agent refused: {type(exc).__name__}: {exc}")
                return EXIT_REFUSED
            raise
        except KeyboardInterrupt:
            return EXIT_INTERRUPTED

    return run


async def _client(ns: argparse.Namespace, address: str, streaming: bool = False) -> Any:
    import httpx
    from a2a.client import A2ACardResolver, ClientConfig, ClientFactory, minimal_agent_card

    # The same settings, and their environment fallbacks, as every command's BrokerClient.
    sec = Security.resolve(token=ns.token, ca=ns.ca, client_cert=ns.client_cert, client_key=ns.client_key)
    headers = {"Authorization": f"Bearer {sec.token}"} if sec.token else None

    def channel(url: str) -> grpc.aio.Channel:
        tls = sec if not url.startswith("grpcs://") else dataclasses.replace(sec, tls=True)
        return tls.channel(url.split("://", 1)[-1], options=())

    http = httpx.AsyncClient(headers=headers)
    if ns.agent_url:
        card = await A2ACardResolver(http, ns.agent_url).get_agent_card()
    else:
        card = minimal_agent_card(f"grpc://{address}", ["GRPC"])
        card.capabilities.streaming = True
    config = ClientConfig(
        streaming=streaming,
        grpc_channel_factory=channel,
        httpx_client=http,
        supported_protocol_bindings=BINDINGS,
    )
    return ClientFactory(config).create(card)


def _show_task(task: Any) -> None:
    print(f"{task.id}  {_state_name(task.status.state)}")
    if task.status.HasField("message"):
        for p in task.status.message.parts:
            if p.text:
                print(f"  agent: {p.text}")
    for art in task.artifacts:
        for p in art.parts:
            print(f"  {art.name or art.artifact_id}: {p.text if p.text else f'<{len(p.raw)} bytes>'}")


def _print(ns: argparse.Namespace, event: Any) -> None:
    from google.protobuf import json_format

    if ns.json:
        print_json(json_format.MessageToDict(event))
        return
    from a2a.types import a2a_pb2

    which = event.WhichOneof("payload") if isinstance(event, a2a_pb2.StreamResponse) else None
    if which == "task":
        _show_task(event.task)
    elif which == "message":
        print("\n".join(p.text for p in event.message.parts if p.text))
    elif which == "status_update":
        print(f"{event.status_update.task_id}  {_state_name(event.status_update.status.state)}")
    elif which == "artifact_update":
        art = event.artifact_update.artifact
        for p in art.parts:
            print(f"  {art.name or art.artifact_id}: {p.text if p.text else f'<{len(p.raw)} bytes>'}")
    else:
        _show_task(event)


async def _send(ns: argparse.Namespace, address: str) -> int:
    import sys

    from a2a.types import a2a_pb2

    text = sys.stdin.read() if ns.text == "-" else ns.text
    msg = a2a_pb2.Message(
        message_id=ns.message_id or str(uuid.uuid4()),
        role=a2a_pb2.ROLE_USER,
        task_id=ns.task,
        context_id=ns.context,
    )
    msg.parts.add(text=text)
    if ns.skill:
        msg.metadata.update({"skill": ns.skill[0]} if len(ns.skill) == 1 else {"skills": ns.skill})
    req = a2a_pb2.SendMessageRequest(message=msg)
    req.configuration.return_immediately = ns.no_wait
    client = await _client(ns, address, streaming=ns.stream)
    state = ""
    try:
        async for event in client.send_message(req):
            _print(ns, event)
            state = _state_of(event) or state
    finally:
        await client.close()
    if state in _FAILED:
        error(f"the task ended {state}")
        return EXIT_TASK_FAILED
    return EXIT_OK


_FAILED = ("failed", "rejected", "canceled")


def _state_of(event: Any) -> str:
    """The task state an event reports (``failed``...), or "" when it reports none."""
    from a2a.types import a2a_pb2

    if isinstance(event, a2a_pb2.StreamResponse):
        which = event.WhichOneof("payload")
        if which == "task":
            event = event.task
        elif which == "status_update":
            event = event.status_update
        else:
            return ""
    if not isinstance(event, a2a_pb2.Task | a2a_pb2.TaskStatusUpdateEvent):
        return ""
    return _state_name(event.status.state)


def _state_name(state: int) -> str:
    from a2a.types import a2a_pb2

    return a2a_pb2.TaskState.Name(state).removeprefix("TASK_STATE_").lower()


async def _get(ns: argparse.Namespace, address: str) -> int:
    from a2a.types import a2a_pb2

    client = await _client(ns, address)
    try:
        _print(ns, await client.get_task(a2a_pb2.GetTaskRequest(id=ns.task_id)))
    finally:
        await client.close()
    return EXIT_OK


async def _cancel(ns: argparse.Namespace, address: str) -> int:
    from a2a.types import a2a_pb2

    client = await _client(ns, address)
    try:
        _print(ns, await client.cancel_task(a2a_pb2.CancelTaskRequest(id=ns.task_id)))
    finally:
        await client.close()
    return EXIT_OK


async def _card(ns: argparse.Namespace, address: str) -> int:
    from a2a.types import a2a_pb2
    from google.protobuf import json_format

    client = await _client(ns, address)
    try:
        card = await client.get_extended_agent_card(a2a_pb2.GetExtendedAgentCardRequest())
    finally:
        await client.close()
    print(json.dumps(json_format.MessageToDict(card), indent=2))
    return EXIT_OK
