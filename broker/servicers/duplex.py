"""The shape of a bidirectional stream that pushes work and confirms what the client writes back
(Messaging.Consume: deliveries and acks; TaskQueue.Work: assignments and outcomes).

``duplex`` yields what ``pushes`` produces, and, for each request the client writes, what
``settle`` returns for it, in the order the requests came, once settled. Requests are settled
concurrently (their writes share commits) and confirmed in order. The stream ends cleanly when the
client closes its side and every request is confirmed, and with the first failure of either side.
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
) -> AsyncIterator[P | C]:
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
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            try:
                await t
            except asyncio.CancelledError:
                pass
