"""A subscription whose acks and nacks travel on the same stream (the broker's ``Consume``), with
a fallback to ``Subscribe`` and unary ``Ack``/``Nack`` against a broker that predates it."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

import grpc

from . import _convert as c
from . import models as m
from ._stream import Stream
from .errors import BrokerRpcError, error_for, from_grpc
from .pb import messaging_pb2

METHOD = "messaging/Consume"


class Consumption:
    """The agent's messages, backlog first then live, one :class:`Message` at a time; ack them
    with :meth:`ack` (answered once committed) or hand them back with :meth:`nack`, on the same
    stream. Iterate with ``async for``; close with :meth:`aclose` or ``async with`` (unacked
    messages are released for redelivery)."""

    def __init__(
        self,
        open_call: Callable[[], Any],
        subscribe: messaging_pb2.SubscribeRequest,
        fallback: Callable[[], Stream[m.Message]],
        unary_ack: Callable[[list[str]], Any],
        unary_nack: Callable[..., Any],
    ) -> None:
        self._open_call = open_call
        self._subscribe = subscribe
        self._fallback_factory = fallback
        self._unary_ack = unary_ack
        self._unary_nack = unary_nack
        self._call: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._fallback: Stream[m.Message] | None = None
        # Read by a task of its own, so that a confirmation arrives while the caller awaits an
        # ack inside its ``async for`` body: messages (lists), then None (end) or an exception.
        self._inbox: asyncio.Queue[list[m.Message] | BaseException | None] = asyncio.Queue()
        self._buffer: deque[m.Message] = deque()
        self._waiting: dict[int, asyncio.Future[messaging_pb2.ConsumeConfirm]] = {}
        self._seq = 0
        self._write = asyncio.Lock()  # one write at a time on a gRPC call
        self._closed = False

    @property
    def in_band(self) -> bool:
        """Whether acks travel on the stream (False: the broker has no Consume; unary calls)."""
        return self._fallback is None

    async def _start(self) -> None:
        if self._call is None and self._fallback is None:
            self._call = self._open_call()
            self._reader = asyncio.ensure_future(self._read())
            await self._call.write(messaging_pb2.ConsumeRequest(subscribe=self._subscribe))

    async def _read(self) -> None:
        try:
            async for resp in self._call:
                if resp.HasField("confirm"):
                    fut = self._waiting.pop(resp.confirm.sequence, None)
                    if fut is not None and not fut.done():
                        fut.set_result(resp.confirm)
                if resp.messages:
                    self._inbox.put_nowait([c.message(x) for x in resp.messages])
            self._inbox.put_nowait(None)
        except grpc.aio.AioRpcError as exc:
            self._fail_waiting(exc)
            self._inbox.put_nowait(exc)
        except asyncio.CancelledError:
            self._inbox.put_nowait(None)

    async def wait_live(self) -> None:
        """Wait until the subscription is live (anything committed afterwards reaches it)."""
        await self._start()
        if self._fallback is not None:
            await self._fallback.wait_live()
            return
        try:
            await self._call.initial_metadata()
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.UNIMPLEMENTED:
                raise from_grpc(exc, METHOD) from exc
            self._fallback = self._fallback_factory()  # an older broker: Subscribe
            await self._fallback.wait_live()

    def __aiter__(self) -> Consumption:
        return self

    async def __anext__(self) -> m.Message:
        await self._start()
        while not self._buffer:
            if self._fallback is not None:
                return await self._fallback.__anext__()
            if self._closed:
                raise StopAsyncIteration
            item = await self._inbox.get()
            if item is None:
                self._closed = True
                raise StopAsyncIteration
            if isinstance(item, grpc.aio.AioRpcError):
                if item.code() == grpc.StatusCode.UNIMPLEMENTED and self._seq == 0:
                    self._fallback = self._fallback_factory()  # an older broker: Subscribe
                    continue
                if self._closed and item.code() == grpc.StatusCode.CANCELLED:
                    raise StopAsyncIteration
                raise from_grpc(item, METHOD)
            if isinstance(item, BaseException):
                raise item
            self._buffer.extend(item)
        return self._buffer.popleft()

    async def _settle(self, **fields: Any) -> messaging_pb2.ConsumeConfirm:
        """Write one ack/nack request and wait for its confirmation (read by ``_read``)."""
        await self._start()
        self._seq += 1
        seq = self._seq
        fut: asyncio.Future[messaging_pb2.ConsumeConfirm] = asyncio.get_running_loop().create_future()
        self._waiting[seq] = fut
        try:
            async with self._write:
                await self._call.write(messaging_pb2.ConsumeRequest(sequence=seq, **fields))
        except grpc.aio.AioRpcError as exc:
            self._waiting.pop(seq, None)
            raise from_grpc(exc, METHOD) from exc
        except asyncio.InvalidStateError:  # the call is over
            self._waiting.pop(seq, None)
            raise error_for(grpc.StatusCode.UNAVAILABLE, "the stream has ended", METHOD) from None
        confirm = await fut
        if confirm.code != 0:
            code = next((s for s in grpc.StatusCode if s.value[0] == confirm.code), grpc.StatusCode.UNKNOWN)
            raise error_for(code, confirm.error, METHOD)
        return confirm

    async def ack(self, message_ids: Sequence[str] | str) -> int:
        """Mark delivered messages processed; returns how many changed, once committed."""
        ids = [message_ids] if isinstance(message_ids, str) else list(message_ids)
        if self._fallback is not None:
            return int(await self._unary_ack(ids))
        return int((await self._settle(ack_ids=ids)).acked)

    async def nack(
        self,
        message_ids: Sequence[str] | str,
        *,
        delay: m.Seconds | None = None,
        reject: bool = False,
        reason: str = "",
    ) -> m.NackResult:
        """Hand messages back for redelivery (after ``delay``), or dead-letter them with ``reject``."""
        ids = [message_ids] if isinstance(message_ids, str) else list(message_ids)
        if self._fallback is not None:
            result: m.NackResult = await self._unary_nack(ids, delay=delay, reject=reject, reason=reason)
            return result
        fields: dict[str, Any] = {"nack_ids": ids, "reject": reject, "reason": reason}
        if delay is not None:
            fields["nack_delay"] = c.duration(delay)
        confirm = await self._settle(**fields)
        return m.NackResult(confirm.requeued, confirm.dead_lettered)

    def _fail_waiting(self, exc: grpc.aio.AioRpcError) -> None:
        for fut in self._waiting.values():
            if not fut.done():
                fut.set_exception(from_grpc(exc, METHOD))
        self._waiting.clear()

    async def aclose(self) -> None:
        """End the stream (idempotent); acks not yet confirmed may or may not have landed."""
        self._closed = True
        if self._fallback is not None:
            await self._fallback.aclose()
        if self._call is not None:
            self._call.cancel()
        if self._reader is not None:
            self._reader.cancel()
        for fut in self._waiting.values():
            if not fut.done():
                fut.set_exception(error_for(grpc.StatusCode.CANCELLED, "the stream was closed", METHOD))
        self._waiting.clear()

    @property
    def closed(self) -> bool:
        return self._closed

    async def __aenter__(self) -> Consumption:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


__all__ = ["BrokerRpcError", "Consumption"]
