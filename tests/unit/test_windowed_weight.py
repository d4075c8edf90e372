"""The publish window counts a batched entry's messages: with a window of 5, entries of 3 and 3
are not both taken until the first is answered."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from broker.core.streams import windowed


async def test_a_batched_entry_counts_each_of_its_items_against_the_window():
    gates = {name: asyncio.Event() for name in "abc"}
    started: list[str] = []

    async def requests() -> AsyncIterator[tuple[str, int]]:
        for r in (("a", 3), ("b", 3), ("c", 1)):
            yield r

    async def handle(req: tuple[str, int]) -> str:
        started.append(req[0])
        await gates[req[0]].wait()
        return req[0]

    answers = windowed(requests(), handle, 5, lambda r: r[1])
    first = asyncio.ensure_future(anext(answers))
    for _ in range(20):
        await asyncio.sleep(0)  # let the reader run as far as the window allows
    assert started == ["a"]  # b (3 more) would hold 6 > 5 unanswered
    gates["a"].set()
    assert await asyncio.wait_for(first, 5) == "a"
    gates["b"].set()
    gates["c"].set()
    assert await asyncio.wait_for(anext(answers), 5) == "b"
    assert await asyncio.wait_for(anext(answers), 5) == "c"
    assert started == ["a", "b", "c"]
