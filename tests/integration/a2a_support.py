"""Helpers of the A2A tests: the worker agent in its own process, a webhook receiver for push
notifications, a2a-sdk clients made as a standard A2A client makes them, and one over gRPC for
tests that play the A2A caller."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
import httpx
from a2a.client import ClientConfig, ClientFactory, create_client, minimal_agent_card
from a2a.types import a2a_pb2 as a2a
from aiohttp import web

from tests.conftest import ROOT

S = a2a.TaskState


@asynccontextmanager
async def agent_process(
    address: str, agent_id: str, skill: str, token: str | None = None
) -> AsyncIterator[None]:
    """``tests/integration/a2a_agent.py`` in its own process, registered before this yields."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [
        sys.executable,
        "-m",
        "tests.integration.a2a_agent",
        address,
        agent_id,
        skill,
        *([token] if token else []),
    ]
    proc = await asyncio.create_subprocess_exec(*args, env=env, stdout=asyncio.subprocess.PIPE, cwd=ROOT)
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert line.strip() == b"ready", f"the agent process did not start: {line!r}"
        yield
    finally:
        if proc.returncode is None:
            proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)


async def default_client(url: str, token: str | None = None, *, streaming: bool = True) -> Any:
    """a2a-sdk's client on its default configuration (JSON-RPC, streaming), from the agent card at
    ``url``; with a token, every request carries ``Authorization: Bearer``; ``streaming=False``
    for a blocking send (the one setting changed)."""
    if token is None and streaming:
        return await create_client(url)
    http = httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"} if token else {})
    client = await create_client(url, client_config=ClientConfig(httpx_client=http, streaming=streaming))
    close = client.close

    async def close_both() -> None:  # a client given an httpx client leaves it open
        await close()
        await http.aclose()

    client.close = close_both
    return client


def text_message(
    text: str, mid: str, *, task_id: str = "", context_id: str = "", **meta: Any
) -> a2a.SendMessageRequest:
    m = a2a.Message(message_id=mid, role=a2a.ROLE_USER, task_id=task_id, context_id=context_id)
    m.parts.add(text=text)
    if meta:
        m.metadata.update(meta)
    return a2a.SendMessageRequest(message=m)


async def collect(stream: AsyncIterator[Any], n: int | None = None, timeout: float = 15.0) -> list[Any]:
    """The items of a stream (the first ``n``), failing after ``timeout`` seconds."""

    async def take() -> list[Any]:
        out = []
        try:
            async for item in stream:
                out.append(item)
                if n is not None and len(out) == n:
                    break
        finally:
            closing = getattr(stream, "aclose", None)
            if closing is not None:
                await closing()  # a stream left early ends its call (and its connection)
        return out

    try:
        return await asyncio.wait_for(take(), timeout)
    except TimeoutError:
        raise AssertionError(f"the stream gave fewer than {n} items within {timeout}s") from None


def state_of(event: Any) -> str:
    """The A2A state a stream response (or task) says, or "" for an artifact update."""
    if isinstance(event, a2a.Task):
        return S.Name(event.status.state)
    which = event.WhichOneof("payload")
    if which == "task":
        return S.Name(event.task.status.state)
    if which == "status_update":
        return S.Name(event.status_update.status.state)
    return ""


class Receiver:
    """A webhook for push notifications on 127.0.0.1:``port``; it can go down and come back."""

    def __init__(self, port: int, status: int = 200) -> None:
        self.port = port
        self.status = status
        self.got: list[tuple[dict[str, str], dict[str, Any]]] = []  # (headers, body) per POST
        self.arrived = asyncio.Event()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _hook(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        self.got.append((dict(request.headers), body))
        self.arrived.set()
        return web.Response(status=self.status)

    async def start(self) -> None:
        app = web.Application()
        app.add_routes([web.post("/hook", self._hook)])
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def until(self, check: Any, timeout: float = 20.0) -> None:
        """Wait until ``check(bodies)`` holds."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while not check([b for _, b in self.got]):
            left = end - loop.time()
            if left <= 0:
                raise AssertionError(f"push notifications received: {[b for _, b in self.got]}")
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), left)
            except TimeoutError:
                pass


def pushed_states(bodies: list[dict[str, Any]]) -> list[str]:
    """Each notification as its state (a task or status update) or "artifact:<id>"."""
    out = []
    for b in bodies:
        if "task" in b:
            out.append(b["task"]["status"]["state"])
        elif "statusUpdate" in b:
            out.append(b["statusUpdate"]["status"]["state"])
        else:
            out.append("artifact:" + b["artifactUpdate"]["artifact"]["artifactId"])
    return out


def a2a_client(address: str) -> Any:
    """a2a-sdk's client (blocking sends) for the broker at ``address`` (host:port), over gRPC."""
    config = ClientConfig(
        streaming=False,
        grpc_channel_factory=lambda url: grpc.aio.insecure_channel(url.split("://", 1)[-1]),
        supported_protocol_bindings=["GRPC"],
    )
    return ClientFactory(config).create(minimal_agent_card(f"grpc://{address}", ["GRPC"]))


async def say(
    client: Any, text: str, mid: str, *, skill: str = "", task: a2a.Task | None = None, timeout: float = 20.0
) -> a2a.Task:
    """Send one message (to ``skill``, or into ``task`` as an answer) and return the A2A task once
    it ends or waits for the caller."""
    m = a2a.Message(message_id=mid, role=a2a.ROLE_USER)
    m.parts.add(text=text)
    if task is not None:
        m.task_id, m.context_id = task.id, task.context_id
    if skill:
        m.metadata.update({"skill": skill})

    async def first() -> a2a.Task:
        async for event in client.send_message(a2a.SendMessageRequest(message=m)):
            return event.task
        raise AssertionError("no answer to the message")

    try:
        return await asyncio.wait_for(first(), timeout)
    except TimeoutError:
        raise AssertionError(f"no answer to {text!r} within {timeout}s") from None


def state(task: a2a.Task) -> str:
    return a2a.TaskState.Name(task.status.state)


def texts(messages: Any) -> list[str]:
    return [p.text for m in messages for p in m.parts]
