"""The MCP server: the tools, resources and prompts over one :class:`Connector`, on the MCP SDK's
low-level ``Server`` (its handlers for ``resources/subscribe`` and ``subscriptions/listen`` are
public there, and a tool's answer is ours to shape: a short text beside the structured content).

Both protocol eras the SDK serves are covered: a 2025 host subscribes to a resource
(``resources/subscribe``) and is told on its session's stream; a 2026-07-28 host opens a
``subscriptions/listen`` stream naming the resources. Either way a subscription is a Watch of the
broker, made with the subscriber's own credentials, so that a host learns only of what it may read.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Protocol

import grpc
import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler, ResourceUpdated
from mcp.shared.exceptions import MCPError
from pydantic import ValidationError

from ..client import BrokerClient
from ..errors import BrokerRpcError
from . import _args, _prompts, _views
from ._tools import TOOLS, Call, Outcome, ToolFailure, session_with_tasks

log = logging.getLogger("a2a_broker_client.mcp")

INSTRUCTIONS = (
    "a2a-broker is a durable task queue and message broker for AI agents. Hand work to its agents "
    "with submit_task (list_capabilities says which capabilities exist and how busy their agents "
    "are), follow it with wait_for_task, and read results with get_task. Tasks can be grouped in "
    "sessions (create_session, get_session, close_session) and chained (submit_graph). Agents also "
    "exchange messages (send_message, read_conversation). Resources task://{id}, session://{id} and "
    "agents:// can be subscribed to, to be told when they change."
)
MAX_SUBSCRIPTIONS = 100  # resources one connection (2025 era) may follow at once


@dataclass(frozen=True)
class Caller:
    """Who makes an MCP request: the HTTP headers it came with (None on stdio) and the name the
    MCP client gave in its ``clientInfo`` (empty when it gave none)."""

    headers: Mapping[str, str] | None
    client_name: str


class Connector(Protocol):
    """Where the tools' calls go: a :class:`BrokerClient` for a caller, carrying its credentials.
    ``hint`` says how a caller authenticates (added to an UNAUTHENTICATED refusal)."""

    hint: str

    def client(self, caller: Caller) -> AbstractAsyncContextManager[BrokerClient]: ...


# (tool or method, caller, outcome: "OK" or an error's name, seconds): one per tool call.
Observer = Callable[[str, Caller, str, float], None]


def user_agent(caller: Caller) -> str:
    """The gRPC user agent of a caller's calls: the broker's access log shows it (and so the MCP
    client's name) beside each call."""
    name = "".join(ch for ch in caller.client_name[:64] if ch.isprintable() and ch not in "()")
    return f"a2a-broker-mcp ({name or 'unnamed client'})"


def caller_of(ctx: ServerRequestContext[Any, Any]) -> Caller:
    params = ctx.session.client_params
    headers = getattr(ctx.request, "headers", None)
    return Caller(headers, params.client_info.name if params is not None else "")


def refusal(exc: BrokerRpcError, hint: str) -> str:
    """A broker's refusal as the model should read it."""
    text = f"The broker refused: {exc.code_name}: {exc.details}"
    if exc.code == grpc.StatusCode.UNAUTHENTICATED:
        text += f". {hint}"
    elif exc.code == grpc.StatusCode.PERMISSION_DENIED:
        text += ". The credentials this MCP server uses do not allow it."
    elif exc.code == grpc.StatusCode.UNAVAILABLE:
        text += ". The broker is unreachable or restarting: try again shortly."
    return text


def _result(outcome: Outcome) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=outcome.text)],
        structured_content=outcome.data,
        is_error=outcome.error,
    )


def _error(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=True)


def _resource_error(exc: BrokerRpcError, hint: str) -> MCPError:
    code = {
        grpc.StatusCode.NOT_FOUND: types.INVALID_PARAMS,
        grpc.StatusCode.INVALID_ARGUMENT: types.INVALID_PARAMS,
        grpc.StatusCode.PERMISSION_DENIED: types.INVALID_REQUEST,
        grpc.StatusCode.UNAUTHENTICATED: types.INVALID_REQUEST,
    }.get(exc.code, types.INTERNAL_ERROR)
    return MCPError(code, refusal(exc, hint))


# ---------------------------------------------------------------- resources


RESOURCE_TEMPLATES = [
    types.ResourceTemplate(
        name="task",
        uri_template="task://{task_id}",
        description="A task: its state, agent, result or error, and its history of state changes.",
        mime_type="application/json",
    ),
    types.ResourceTemplate(
        name="session",
        uri_template="session://{session_id}",
        description="A session: its state and progress, with each of its tasks.",
        mime_type="application/json",
    ),
]
AGENTS_URI = "agents://"


def parse_uri(uri: str) -> tuple[str, str]:
    """(kind, id) of a resource URI: ("task", id), ("session", id) or ("agents", "")."""
    scheme, sep, rest = uri.partition("://")
    if sep and scheme in ("task", "session") and rest and "/" not in rest:
        return scheme, rest
    if uri.rstrip("/") == AGENTS_URI.rstrip("/"):
        return "agents", ""
    raise MCPError(
        types.INVALID_PARAMS,
        f"unknown resource {uri!r}: the broker serves task://<task id>, session://<session id> and "
        f"{AGENTS_URI}",
    )


async def read_json(client: BrokerClient, kind: str, ident: str) -> Any:
    if kind == "task":
        return _views.task(await client.get_task(ident), await client.get_history(ident))
    if kind == "session":
        return (await session_with_tasks(client, ident, 500))[1]
    agents = [_views.agent(a) async for a in client.iter_agents()]
    return {"agents": agents}


class Watches:
    """The broker watches behind resource subscriptions, each followed in a task of its own (it
    outlives the request that made it) until cancelled, or until what it watches can no longer
    change (a finished task, an ended session)."""

    def __init__(self, connector: Connector) -> None:
        self.connector = connector
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(
        self, caller: Caller, uri: str, changed: Callable[[str], Awaitable[None]]
    ) -> asyncio.Task[None]:
        """Open the watch of ``uri`` (raising the broker's refusal, if any) and follow it."""
        kind, ident = parse_uri(uri)
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(self._follow(caller, uri, kind, ident, changed, ready))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        try:
            await ready
        except BaseException:
            task.cancel()
            raise
        return task

    async def _follow(
        self,
        caller: Caller,
        uri: str,
        kind: str,
        ident: str,
        changed: Callable[[str], Awaitable[None]],
        ready: asyncio.Future[None],
    ) -> None:
        try:
            async with self.connector.client(caller) as client:
                stream: Any
                if kind == "agents":
                    stream = client.watch_agents()
                elif kind == "task":  # with its state now: a task finished already is not followed
                    stream = client.watch_tasks(task_id=ident, include_snapshot=True)
                else:
                    stream = client.watch_tasks(session_id=ident)
                async with stream:
                    await stream.wait_live()
                    ready.set_result(None)
                    async for ev in stream:
                        if not getattr(ev, "snapshot", False):
                            await changed(uri)
                        if kind == "task" and ev.task is not None and ev.task.status.finished:
                            return  # a finished task changes no more
                        if kind == "session" and ev.session is not None:
                            return  # the session has ended
        except asyncio.CancelledError:
            if not ready.done():
                ready.cancel()
            raise
        except Exception as exc:
            if not ready.done():
                ready.set_exception(exc)
            else:
                log.info("resource watch ended", extra={"uri": uri, "error": str(exc)})
        finally:
            if not ready.done():  # ended before it was in place: the subscriber is not left waiting
                ready.set_exception(RuntimeError(f"the watch of {uri} ended before it began"))

    async def close(self) -> None:
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# ---------------------------------------------------------------- the server


class BrokerMcp:
    """The broker's tools, resources and prompts as an MCP server (``.server``, the SDK's
    low-level ``Server``), every call made through ``connector`` with the caller's credentials.

    Args:
        connector: gives each request a client carrying its caller's credentials.
        observe: told of every tool call (the broker's access log).
    """

    def __init__(self, connector: Connector, observe: Observer | None = None) -> None:
        self.connector = connector
        self.observe = observe
        self.watches = Watches(connector)
        self.server: Server[Any] = Server(
            "a2a-broker",
            version=_version(),
            title="a2a-broker",
            instructions=INSTRUCTIONS,
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
            on_list_resources=self._list_resources,
            on_list_resource_templates=self._list_templates,
            on_read_resource=self._read_resource,
            on_subscribe_resource=self._subscribe,
            on_unsubscribe_resource=self._unsubscribe,
            on_subscriptions_listen=self._listen,
            on_list_prompts=self._list_prompts,
            on_get_prompt=self._get_prompt,
        )

    async def close(self) -> None:
        """End every subscription's watch."""
        await self.watches.close()

    # -- tools

    async def _list_tools(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(
            tools=[
                types.Tool(
                    name=t.name,
                    title=t.name.replace("_", " "),
                    description=t.description,
                    input_schema=_args.schema(t.args),
                    annotations=t.annotations,
                )
                for t in TOOLS.values()
            ]
        )

    async def _call_tool(
        self, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        caller = caller_of(ctx)
        t0 = time.perf_counter()
        result, outcome = await self._run_tool(ctx, caller, params)
        if self.observe is not None:
            self.observe(params.name, caller, outcome, time.perf_counter() - t0)
        return result

    async def _run_tool(
        self, ctx: ServerRequestContext[Any, Any], caller: Caller, params: types.CallToolRequestParams
    ) -> tuple[types.CallToolResult, str]:
        tool = TOOLS.get(params.name)
        if tool is None:
            return _error(f"unknown tool {params.name!r}: the tools are {', '.join(TOOLS)}"), "NOT_FOUND"
        try:
            args = tool.args.model_validate(params.arguments or {})
        except ValidationError as exc:
            return _error(_args.argument_errors(tool.name, exc)), "INVALID_ARGUMENT"

        async def progress(done: float, message: str) -> None:
            await ctx.session.report_progress(done, None, message)

        try:
            async with self.connector.client(caller) as client:
                outcome = await tool.run(Call(client, progress), args)
        except BrokerRpcError as exc:
            return _error(refusal(exc, self.connector.hint)), exc.code_name
        except (ToolFailure, ValueError) as exc:  # ValueError: the client refused a value
            return _error(f"{tool.name}: {exc}; nothing was done"), "INVALID_ARGUMENT"
        return _result(outcome), "TASK_NOT_COMPLETED" if outcome.error else "OK"

    # -- resources

    async def _list_resources(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        return types.ListResourcesResult(
            resources=[
                types.Resource(
                    name="agents",
                    uri=AGENTS_URI,
                    description="Every registered agent: capabilities, state, running tasks, free capacity.",
                    mime_type="application/json",
                )
            ]
        )

    async def _list_templates(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        return types.ListResourceTemplatesResult(resource_templates=RESOURCE_TEMPLATES)

    async def _read_resource(
        self, ctx: ServerRequestContext[Any, Any], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        kind, ident = parse_uri(params.uri)
        try:
            async with self.connector.client(caller_of(ctx)) as client:
                data = await read_json(client, kind, ident)
        except BrokerRpcError as exc:
            raise _resource_error(exc, self.connector.hint) from None
        text = json.dumps(data, ensure_ascii=False, indent=1)
        return types.ReadResourceResult(
            contents=[types.TextResourceContents(uri=params.uri, text=text, mime_type="application/json")]
        )

    async def _watch(self, ctx: ServerRequestContext[Any, Any], uri: str, changed: Any) -> asyncio.Task[None]:
        try:
            return await self.watches.start(caller_of(ctx), uri, changed)
        except BrokerRpcError as exc:
            raise _resource_error(exc, self.connector.hint) from None

    async def _subscribe(
        self, ctx: ServerRequestContext[Any, Any], params: types.SubscribeRequestParams
    ) -> types.EmptyResult:
        """2025 era: follow ``uri`` until unsubscribed or the connection ends; each change is a
        ``notifications/resources/updated`` on the connection's own stream."""
        subs = _subscriptions(ctx)
        current = subs.get(params.uri)
        if current is not None and not current.done():
            return types.EmptyResult()
        if sum(not t.done() for t in subs.values()) >= MAX_SUBSCRIPTIONS:
            raise MCPError(types.INVALID_REQUEST, f"at most {MAX_SUBSCRIPTIONS} subscriptions per session")
        session = ctx.session

        async def changed(uri: str) -> None:
            await session.send_resource_updated(uri)

        subs[params.uri] = await self._watch(ctx, params.uri, changed)
        return types.EmptyResult()

    async def _unsubscribe(
        self, ctx: ServerRequestContext[Any, Any], params: types.UnsubscribeRequestParams
    ) -> types.EmptyResult:
        task = _subscriptions(ctx).pop(params.uri, None)
        if task is not None:
            task.cancel()
        return types.EmptyResult()

    async def _listen(
        self, ctx: ServerRequestContext[Any, Any], params: types.SubscriptionsListenRequestParams
    ) -> types.SubscriptionsListenResult:
        """2026-07-28 era: the stream lasts as long as this request; the watches of the resources
        it names (refused before the acknowledgement when the caller may not read one) with it."""
        bus = InMemorySubscriptionBus()

        async def changed(uri: str) -> None:
            await bus.publish(ResourceUpdated(uri=uri))

        watches: list[asyncio.Task[None]] = []
        try:
            for uri in dict.fromkeys(params.notifications.resource_subscriptions or ()):
                watches.append(await self._watch(ctx, uri, changed))
            return await ListenHandler(bus, max_subscriptions=1)(ctx, params)
        finally:
            for w in watches:
                w.cancel()

    # -- prompts

    async def _list_prompts(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListPromptsResult:
        return types.ListPromptsResult(prompts=_prompts.PROMPTS)

    async def _get_prompt(
        self, ctx: ServerRequestContext[Any, Any], params: types.GetPromptRequestParams
    ) -> types.GetPromptResult:
        try:
            async with self.connector.client(caller_of(ctx)) as client:
                return await _prompts.get(client, params.name, params.arguments or {})
        except BrokerRpcError as exc:
            raise _resource_error(exc, self.connector.hint) from None


_SUBSCRIPTIONS = "a2a_broker.subscriptions"


def _subscriptions(ctx: ServerRequestContext[Any, Any]) -> dict[str, asyncio.Task[None]]:
    """The 2025-era subscriptions of the request's connection, ended with it.

    The SDK keeps per-connection state and teardown on its ``Connection`` (``state``,
    ``exit_stack``: "push cleanup from handlers"), which its low-level request context does not
    expose yet (its TODO L54): it is read from the session here, and a test fails if that moves.
    """
    connection: Any = getattr(ctx.session, "_connection", None)
    if connection is None:
        raise MCPError(
            types.METHOD_NOT_FOUND, "resources/subscribe is not available here: use subscriptions/listen"
        )
    subs: dict[str, asyncio.Task[None]] | None = connection.state.get(_SUBSCRIPTIONS)
    if subs is None:
        subs = connection.state[_SUBSCRIPTIONS] = {}
        stack: AsyncExitStack = connection.exit_stack
        stack.callback(_cancel_all, subs)
    return subs


def _cancel_all(subs: dict[str, asyncio.Task[None]]) -> None:
    for task in subs.values():
        task.cancel()


def _version() -> str:
    try:
        return metadata.version("a2a-broker-client")
    except metadata.PackageNotFoundError:
        return "0"
