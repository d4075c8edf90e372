"""What both engines' writers share: take every job waiting (a group), run the group in one
transaction (the engine opens and commits it), each job in a savepoint, and hand each caller its
outcome after the commit."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

STOP = object()  # put on the queue by close(): the writer ends after the jobs before it

Waiting = tuple[Any, asyncio.Future[Any]]  # (job, its caller's future)
C = TypeVar("C")
R = TypeVar("R")


def row_locking(job: Callable[[C], R]) -> Callable[[C], R]:
    """Mark a write job that needs no more than READ COMMITTED: each of its statements picks and
    changes its rows in one step (a claim with ``FOR UPDATE SKIP LOCKED``, a conditional UPDATE),
    so it is right whatever commits beside it. PostgreSQL's engine runs such jobs in a READ
    COMMITTED transaction of their own (nothing for another broker to abort); SQLite ignores it."""

    def marked(conn: C) -> R:
        return job(conn)

    marked.row_locking = True  # type: ignore[attr-defined]
    return marked


async def next_group(queue: asyncio.Queue[Any], batch_max: int) -> tuple[list[Waiting], bool]:
    """The jobs waiting now (at least one unless stopping, at most ``batch_max``), and whether the
    stop marker came."""
    item = await queue.get()
    group: list[Waiting] = []
    while True:
        if item is STOP:
            return group, True
        group.append(item)
        if len(group) >= batch_max or queue.empty():
            return group, False
        item = queue.get_nowait()


def settle(
    group: list[Waiting], outcomes: list[tuple[bool, Any]], wrap: Callable[[Any], BaseException]
) -> None:
    """Each caller's result, or its exception (driver errors turned into the broker's by ``wrap``)."""
    for (_, fut), (ok, value) in zip(group, outcomes, strict=True):
        if fut.done():
            continue
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(wrap(value))


def run_jobs(
    execute: Callable[[str], Any],
    conn: Any,
    jobs: list[Callable[[Any], Any]],
    single: bool,
    passthrough: tuple[type[BaseException], ...] = (),
) -> list[tuple[bool, Any]]:
    """Run jobs in the open transaction, each in a savepoint (``execute`` runs a control
    statement), and return each job's outcome: (True, value) or (False, exception). A job that
    fails is rolled back alone. ``single``: no savepoint; a lone job that fails rolls the whole
    transaction back. An exception of ``passthrough`` ends the group instead (it is run again)."""
    out: list[tuple[bool, Any]] = []
    for fn in jobs:
        if not single:
            execute("SAVEPOINT job")
        try:
            value = fn(conn)
        except passthrough:
            raise
        except BaseException as exc:
            if single:
                execute("ROLLBACK")
                return [(False, exc)]
            execute("ROLLBACK TO SAVEPOINT job")
            execute("RELEASE SAVEPOINT job")
            out.append((False, exc))
        else:
            if not single:
                execute("RELEASE SAVEPOINT job")
            out.append((True, value))
    return out
