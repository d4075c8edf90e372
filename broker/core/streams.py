"""The shapes of the streams that confirm what the client writes, whatever the wire:

- ``duplex``: a bidirectional stream that pushes work and confirms what the client writes back
  (Messaging.Consume: deliveries and acks; TaskQueue.Work: assignments and outcomes);
- ``windowed``: a request stream answered in order with at most a window unanswered
  (Messaging.Publish: publisher confirms);
- ``chunks``: a batch cut into responses of a bounded size (Subscribe and Consume).

``duplex`` yields what ``pushes`` produces, and, for each request the client writes, what
``settle`` returns for it, in the order the requests came, once settled. Requests are settled
concurrently (their writes share commits) and confirmed in order. The stream ends cleanly when the
client closes its side and every request is confirmed, and with the first failure of either side.

It yields lists: everything ready at once, so that the servicer can send a confirmation and the
pushes that came with it in one frame. A frame costs about 100 us of CPU in grpc.aio here, more
than anything the broker does for a message: the profile of a task cycle (10 workers, each
completion freeing room for the next assignment) spends a third of the event loop's time in it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

P = TypeVar("P")
R = TypeVar("R")
C = TypeVar("C")

_END = object()


async def duplex(
    pushes: AsyncIterator[P], requests: AsyncIterator[R], settle: Callable[[R], Awaitable[C]]
) -> AsyncIterator[list[P | C]]:
    out: asyncio.Queue[Any] = asyncio.Queue()
    pending: asyncio.Queue[asyncio.Future[C] | None] = asyncio.Queue()

    async def read() -> None:
        try:
            async for req in requests:
                pending.put_nowait(asyncio.ensure_future(settle(req)))
        finally:
            pending.put_nowait(None)

    async def confirm() -> None:
        while (fut := await pending.get()) is not None:
            out.put_nowait(await fut)
        out.put_nowait(_END)  # the client closed its side: every request is answered

    async def push() -> None:
        async for item in pushes:
            out.put_nowait(item)

    async def run(step: Awaitable[None]) -> None:
        try:
            await step
        except BaseException as exc:  # the stream ends with the first failure
            out.put_nowait(exc)

    tasks = [asyncio.ensure_future(run(s)) for s in (read(), confirm(), push())]
    try:
        while (item := await out.get()) is not _END:
            ready = [item]
            while not out.empty() and (item := out.get_nowait()) is not _END:
                ready.append(item)
            for i, x in enumerate(ready):
                if isinstance(x, BaseException):
                    if i:
                        yield ready[:i]  # what came before the failure still goes out
                    raise x
            yield ready
            if item is _END:
                return
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            try:
                await t
            except asyncio.CancelledError:
                pass


def frames(ready: list[Any], is_confirm: Callable[[Any], bool]) -> list[tuple[Any, Any]]:
    """``ready`` (one list ``duplex`` yielded) as frames of (push or None, confirmation or None):
    each push with the confirmation next to it, in order on both sides. At most one push per
    frame (a push is already sized to fit a response) and one confirmation (the field is single)."""
    out: list[tuple[Any, Any]] = []
    push = confirm = None
    for x in ready:
        if x is None:
            continue
        if is_confirm(x):
            if confirm is not None:
                out.append((push, confirm))
                push = None
            confirm = x
        else:
            if push is not None:
                out.append((push, confirm))
                confirm = None
            push = x
    if push is not None or confirm is not None:
        out.append((push, confirm))
    return out


async def windowed(
    requests: AsyncIterator[R],
    handle: Callable[[R], Awaitable[C]],
    window: int,
    weight: Callable[[R], int] | None = None,
) -> AsyncIterator[C]:
    """Each request handled as soon as it is read (concurrently: their writes share commits) and
    answered in the order read, with at most ``window`` unanswered: no further request is read
    until an answer goes out (backpressure). A request counts ``weight(req)`` (at most
    ``window``; 1 without ``weight``) against the window: a batched request, its entries. A broken
    request stream ends with its error, after the answers of what it delivered."""
    slots = asyncio.Semaphore(window)
    answers: asyncio.Queue[tuple[asyncio.Future[C], int] | None] = asyncio.Queue()

    async def read() -> None:
        try:
            async for req in requests:
                n = weight(req) if weight is not None else 1
                for _ in range(n):
                    await slots.acquire()  # backpressure: no further read until an answer
                answers.put_nowait((asyncio.ensure_future(handle(req)), n))
        finally:
            answers.put_nowait(None)

    reader = asyncio.ensure_future(read())
    try:
        while (answer := await answers.get()) is not None:
            out = await answer[0]
            for _ in range(answer[1]):
                slots.release()
            yield out
        await reader  # a broken request stream ends the call with its error
    finally:
        reader.cancel()


def chunks(sizes: list[int], max_bytes: int) -> list[tuple[int, int]]:
    """``sizes`` (each item's framed size, in order) cut into runs ``[start, end)`` of at most
    ``max_bytes`` each; an item larger than that goes alone."""
    out: list[tuple[int, int]] = []
    start = size = 0
    for i, n in enumerate(sizes):
        if i > start and size + n > max_bytes:
            out.append((start, i))
            start, size = i, 0
        size += n
    out.append((start, len(sizes)))
    return out
