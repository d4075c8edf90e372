"""Helpers shared by the messaging integration tests."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc

from broker.pb import agents_pb2 as apb
from broker.pb import messaging_pb2 as pb
from tests.conftest import eventually


async def register(stubs: Any, agent_id: str, caps: tuple[str, ...] | list[str] = ()) -> None:
    await stubs.agents.Register(
        apb.RegisterRequest(agent_id=agent_id, capabilities=list(caps), max_concurrent_tasks=1)
    )


def to(agent_id: str) -> pb.Target:
    return pb.Target(agent_id=agent_id)


async def send(stubs: Any, sender: str, target: pb.Target | str, payload: bytes = b"x", **kw: Any) -> str:
    if isinstance(target, str):
        target = to(target)
    r = await stubs.messaging.Send(pb.SendRequest(sender_id=sender, target=target, payload=payload, **kw))
    assert len(r.message_ids) == 1
    return r.message_ids[0]


async def ack(stubs: Any, agent_id: str, ids: list[str]) -> int:
    return (await stubs.messaging.Ack(pb.AckRequest(agent_id=agent_id, message_ids=ids))).acked


async def get(stubs: Any, message_id: str) -> pb.Message:
    return await stubs.messaging.GetMessage(pb.GetMessageRequest(message_id=message_id))


class Sub:
    """A Subscribe stream, live once ``open`` returns (the broker sent its headers).

    A task reads the stream into a queue: waiting on the queue with a timeout
    must not cancel the call (cancelling a pending ``read`` would). Opened with ``broker=`` (a
    broker in this process), it knows the broker's end of the stream, which ``nothing`` looks at.
    """

    def __init__(self, call: Any) -> None:
        self.call = call
        self.server: Any = None  # the broker's Subscription, when opened with broker=
        self.received = 0  # messages read from the stream
        self._buffer: list[pb.Message] = []
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        try:
            async for resp in self.call:
                self.received += len(resp.messages)
                self._queue.put_nowait(list(resp.messages))
            self._queue.put_nowait(grpc.StatusCode.OK)
        except grpc.aio.AioRpcError as err:
            self._queue.put_nowait(err.code())
        except asyncio.CancelledError:
            self._queue.put_nowait(grpc.StatusCode.CANCELLED)

    @classmethod
    async def open(
        cls,
        stubs: Any,
        agent_id: str,
        timeout: float = 5.0,
        wait_for_ready: bool | None = None,
        broker: Any = None,
        **kw: Any,
    ) -> Sub:
        before = set(broker.mailbox.ledger.streams(agent_id)) if broker is not None else set()
        call = stubs.messaging.Subscribe(
            pb.SubscribeRequest(agent_id=agent_id, **kw), wait_for_ready=wait_for_ready
        )
        await asyncio.wait_for(call.initial_metadata(), timeout)
        sub = cls(call)
        if broker is not None:  # opened before its headers were sent
            (sub.server,) = set(broker.mailbox.ledger.streams(agent_id)) - before
        return sub

    async def _next(self, timeout: float) -> Any:
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return None

    async def batch(self, timeout: float = 5.0) -> list[pb.Message]:
        """The next response's messages (or what is left of one already read)."""
        if self._buffer:
            out, self._buffer = self._buffer, []
            return out
        item = await self._next(timeout)
        if item is None:
            raise AssertionError(f"no delivery within {timeout}s")
        if isinstance(item, grpc.StatusCode):
            raise AssertionError(f"stream ended: {item}")
        return item

    async def take(self, n: int, timeout: float = 5.0) -> list[pb.Message]:
        """Exactly the next n messages, over as many responses as they come in."""
        out: list[pb.Message] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(out) < n:
            out.extend(await self.batch(max(0.01, deadline - loop.time())))
        self._buffer = out[n:]
        return out[:n]

    async def one(self, timeout: float = 5.0) -> pb.Message:
        return (await self.take(1, timeout))[0]

    async def nothing(self, timeout: float = 5.0) -> None:
        """Assert that nothing more is delivered: the broker's end of the stream is idle (it looked,
        found nothing it may take, and waits for a wake-up), everything it handed out was read
        here, and the test took all of it. (No waiting for a time: for the events.)"""
        server = self.server
        assert server is not None, "open the Sub with broker= to check that nothing comes"
        assert not self._buffer, f"unexpected buffered messages {self._buffer}"
        await eventually(lambda: _now(server.idle), timeout, what="the broker's end of the stream idle")
        await eventually(
            lambda: _now(self.received >= server.delivered), timeout, what="what it sent, read here"
        )
        queued = [self._queue.get_nowait() for _ in range(self._queue.qsize())]
        for x in queued:
            self._queue.put_nowait(x)
        unread = [x for x in queued if not isinstance(x, grpc.StatusCode)]
        assert not unread, f"unexpected delivery: {unread}"

    async def ended(self, timeout: float = 5.0) -> grpc.StatusCode:
        """Wait for the stream to end (discarding deliveries); return its status code."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            item = await self._next(max(0.01, deadline - loop.time()))
            if item is None:
                raise AssertionError(f"stream did not end within {timeout}s")
            if isinstance(item, grpc.StatusCode):
                return item

    def cancel(self) -> None:
        self.call.cancel()
        self._reader.cancel()


async def _now(value: bool) -> bool:
    return value
