"""A bidirectional stream the broker pushes work on and confirms what the client writes back
(``Consume``: messages and acks; ``Work``: assignments and outcomes), with a fallback to the
server stream and unary calls against a broker that predates it (UNIMPLEMENTED).

Entries written with :meth:`Duplex._coalesced` (Work's outcomes) share one request with whatever
other entries are ready when the request is written (those queued in the same turn of the event
loop, or while the previous write was under way): the broker answers such a request with one
confirmation and one result per entry. Nothing waits to fill a batch; a broker that does not state
that it takes batched requests (response header) gets one request per entry.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

import grpc

from ._stream import Stream
from .errors import error_for, from_grpc

T = TypeVar("T")
log = logging.getLogger("a2a_broker_client")

# One batched request carries at most this many entries and about this many bytes of payload
# (well under the broker's request size limit).
MAX_BATCH = 1000
MAX_BATCH_BYTES = 1 << 20
_CODES = {s.value[0]: s for s in grpc.StatusCode}


class Duplex(Generic[T]):
    """Items pushed by the broker (iterate with ``async for``) and requests answered once
    committed (subclasses' methods, through :meth:`_settle`). A task reads the stream, so a
    confirmation arrives while the caller awaits it inside its loop body. Close with
    :meth:`aclose` or ``async with``."""

    method = ""

    def __init__(
        self,
        open_call: Callable[[], Any],
        opening: Any,
        fallback: Callable[[], Stream[T]],
    ) -> None:
        self._open_call = open_call
        self._opening = opening
        self._fallback_factory = fallback
        self._call: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._fallback: Stream[T] | None = None
        self._inbox: asyncio.Queue[list[T] | BaseException | None] = asyncio.Queue()
        self._buffer: deque[T] = deque()
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._seq = 0
        self._write = asyncio.Lock()  # one write at a time on a gRPC call
        self._closed = False
        self._queued: list[tuple[Any, int, asyncio.Future[Any]]] = []  # entries, their sizes
        self._flusher: asyncio.Task[None] | None = None
        self._batch_max = 0  # entries per batched request the broker takes (0: none)

    # -- what a subclass says -----------------------------------------------------------------

    def _items(self, resp: Any) -> list[T]:
        """The pushed items a response carries."""
        raise NotImplementedError

    def _confirm(self, resp: Any) -> Any | None:
        """The confirmation a response carries, if any (with ``sequence``, ``code``, ``error``)."""
        raise NotImplementedError

    def _request(self, sequence: int, **fields: Any) -> Any:
        raise NotImplementedError

    def _batch_request(self, sequence: int, entries: list[Any]) -> Any:
        """A request carrying ``entries`` (those given to :meth:`_coalesced`): the single form
        for one, the batched form for several."""
        raise NotImplementedError

    batch_header = ""  # the response header in which the broker states its batch size

    # -- the stream ---------------------------------------------------------------------------

    @property
    def in_band(self) -> bool:
        """Whether requests travel on the stream (False: the broker lacks it; unary calls)."""
        return self._fallback is None

    async def _start(self) -> None:
        if self._call is None and self._fallback is None:
            self._call = self._open_call()
            self._reader = asyncio.ensure_future(self._read())
            # Under the write lock: a request settled meanwhile is written after the opening one
            # (two writes at once on a gRPC call fail it with INTERNAL).
            async with self._write:
                try:
                    await self._call.write(self._opening)
                except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
                    pass  # the call failed (the broker is away...): the reader reports its status

    async def _read(self) -> None:
        try:
            if self.batch_header:
                headers = dict(await self._call.initial_metadata() or ())
                self._batch_max = min(int(headers.get(self.batch_header, 0) or 0), MAX_BATCH)
            async for resp in self._call:
                confirm = self._confirm(resp)
                if confirm is not None:
                    fut = self._waiting.pop(confirm.sequence, None)
                    if fut is not None and not fut.done():
                        fut.set_result(confirm)
                    elif fut is None and confirm.code:  # a refused request nobody waits for
                        seq, why = confirm.sequence, confirm.error
                        log.warning("%s: request %d refused: %s", self.method, seq, why)
                items = self._items(resp)
                if items:
                    self._inbox.put_nowait(items)
            self._inbox.put_nowait(None)
        except grpc.aio.AioRpcError as exc:
            for fut in self._waiting.values():
                if not fut.done():
                    fut.set_exception(from_grpc(exc, self.method))
            self._waiting.clear()
            self._inbox.put_nowait(exc)
        except asyncio.CancelledError:
            self._inbox.put_nowait(None)

    async def wait_live(self) -> None:
        """Wait until the stream is live (anything committed afterwards reaches it)."""
        await self._start()
        if self._fallback is None:
            try:
                await self._call.initial_metadata()
                code = await self._call.code() if self._call.done() else grpc.StatusCode.OK
            except grpc.aio.AioRpcError as exc:
                code = exc.code()
                if code != grpc.StatusCode.UNIMPLEMENTED:
                    raise from_grpc(exc, self.method) from exc
            if code == grpc.StatusCode.OK:
                return
            if code != grpc.StatusCode.UNIMPLEMENTED:  # it ended before it was live (unreachable...)
                raise error_for(code, await self._call.details(), self.method)
            self._fallback = self._fallback_factory()  # an older broker
        await self._fallback.wait_live()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> T:
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
                    self._fallback = self._fallback_factory()  # an older broker
                    continue
                if self._closed and item.code() == grpc.StatusCode.CANCELLED:
                    raise StopAsyncIteration
                raise from_grpc(item, self.method)
            if isinstance(item, BaseException):
                raise item
            self._buffer.extend(item)
        return self._buffer.popleft()

    async def _send(self, **fields: Any) -> None:
        """Write one request that expects no confirmation (unless refused: then logged)."""
        await self._start()
        self._seq += 1
        try:
            async with self._write:
                await self._call.write(self._request(self._seq, **fields))
        except grpc.aio.AioRpcError as exc:
            raise from_grpc(exc, self.method) from exc
        except asyncio.InvalidStateError:  # the call is over
            raise error_for(grpc.StatusCode.UNAVAILABLE, "the stream has ended", self.method) from None

    async def _settle(self, **fields: Any) -> Any:
        """Write one request and wait for its confirmation; a refusal raises its error."""
        await self._start()
        self._seq += 1
        seq = self._seq
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[seq] = fut
        try:
            async with self._write:
                await self._call.write(self._request(seq, **fields))
        except grpc.aio.AioRpcError as exc:
            self._waiting.pop(seq, None)
            raise from_grpc(exc, self.method) from exc
        except asyncio.InvalidStateError:  # the call is over
            self._waiting.pop(seq, None)
            raise error_for(grpc.StatusCode.UNAVAILABLE, "the stream has ended", self.method) from None
        confirm = await fut
        if confirm.code != 0:
            code = next((s for s in grpc.StatusCode if s.value[0] == confirm.code), grpc.StatusCode.UNKNOWN)
            raise error_for(code, confirm.error, self.method)
        return confirm

    async def _coalesced(self, entry: Any, size: int = 0) -> Any:
        """Write ``entry`` in the next request, with whatever other entries are ready then, and
        return its result (``code`` checked: a refusal raises its error). ``size``: its payload's
        bytes, to keep a batched request well under the broker's limit."""
        await self._start()
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queued.append((entry, size, fut))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.ensure_future(self._flush())
        result = await fut
        if result.code != 0:
            raise error_for(_CODES.get(result.code, grpc.StatusCode.UNKNOWN), result.error, self.method)
        return result

    async def _flush(self) -> None:
        """Write the queued entries, as few requests as the broker allows, until none is left."""
        while self._queued:
            async with self._write:  # entries queued while waiting join this request
                n, size = 1, self._queued[0][1]
                while n < min(len(self._queued), self._batch_max):
                    size += self._queued[n][1]
                    if size > MAX_BATCH_BYTES:
                        break
                    n += 1
                batch, self._queued = self._queued[:n], self._queued[n:]
                self._seq += 1
                seq = self._seq
                answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
                self._waiting[seq] = answer
                futs = [f for _, _, f in batch]
                answer.add_done_callback(lambda a, futs=futs: _distribute(a, futs))  # type: ignore[misc]
                try:
                    await self._call.write(self._batch_request(seq, [e for e, _, _ in batch]))
                except grpc.aio.AioRpcError as exc:
                    self._waiting.pop(seq, None)
                    answer.set_exception(from_grpc(exc, self.method))
                except asyncio.InvalidStateError:  # the call is over
                    self._waiting.pop(seq, None)
                    answer.set_exception(
                        error_for(grpc.StatusCode.UNAVAILABLE, "the stream has ended", self.method)
                    )
                except Exception as exc:  # handed to the entries' callers
                    self._waiting.pop(seq, None)
                    answer.set_exception(exc)

    async def aclose(self) -> None:
        """End the stream (idempotent); requests not yet confirmed may or may not have landed."""
        self._closed = True
        if self._fallback is not None:
            await self._fallback.aclose()
        if self._call is not None:
            self._call.cancel()
        if self._reader is not None:
            self._reader.cancel()
        for fut in self._waiting.values():
            if not fut.done():
                fut.set_exception(error_for(grpc.StatusCode.CANCELLED, "the stream was closed", self.method))
        self._waiting.clear()
        if self._flusher is not None:
            self._flusher.cancel()
        for _, _, fut in self._queued:
            if not fut.done():
                fut.set_exception(error_for(grpc.StatusCode.CANCELLED, "the stream was closed", self.method))
        self._queued.clear()

    @property
    def closed(self) -> bool:
        return self._closed

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


def _distribute(answer: asyncio.Future[Any], futs: list[asyncio.Future[Any]]) -> None:
    """A request's confirmation to the entries it carried: the single form's confirmation itself,
    the batched form's result for each; the stream's failure to them all."""
    exc = None if answer.cancelled() else answer.exception()
    if answer.cancelled() or exc is not None:
        for f in futs:
            if not f.done():
                f.set_exception(exc or asyncio.CancelledError())
        return
    confirm = answer.result()
    results = list(confirm.results) if len(futs) > 1 or confirm.results else [confirm]
    if confirm.code or len(results) != len(futs):  # the request as a whole was refused
        results = [confirm] * len(futs)
    for f, r in zip(futs, results, strict=True):
        if not f.done():
            f.set_result(r)
