"""Concurrency limits as a resource (set, list, delete) and concurrency keys as they stand (the
``TaskStore`` part that is not dispatch: that is ``tasks_fair.py``)."""

from __future__ import annotations

from ...domain.fairness import KEY, LimitBook, key_subject, refill
from ...errors import NotFound
from ...models.limits import KeyUsage, Limit, LimitInput
from .connection import Connection, Engine
from .queries import Queries
from .tasks_rows import limit_of


def set_limit_job(conn: Connection, q: Queries, inp: LimitInput, epoch: int, now: int) -> Limit:
    lim = Limit.of(inp, now, now)
    row = conn.execute(
        q.limits.upsert,
        (lim.name, lim.key, lim.capability, lim.max_running, lim.rate, lim.per_us, lim.burst, now, now),
    ).fetchone()
    conn.execute(q.limits.set_epoch, (epoch,))
    return limit_of(row)


def delete_limit_job(conn: Connection, q: Queries, name: str, epoch: int) -> None:
    if conn.execute(q.limits.delete, (name,)).rowcount == 0:
        raise NotFound(f"name: no concurrency limit {name!r}")
    conn.execute(q.limits.set_epoch, (epoch,))


def key_usage(conn: Connection, q: Queries, prefix: str, limit: int, now: int) -> list[KeyUsage]:
    """The keys with the most tasks (running and leasable), most first."""
    lim = q.limits
    subject_prefix = key_subject(prefix)
    running = conn.execute(
        lim.key_running, {"n": len(subject_prefix), "prefix": subject_prefix, "lim": limit}
    )
    waiting = conn.execute(lim.key_waiting, {"n": len(prefix), "prefix": prefix, "lim": limit})
    keys = sorted({r[0] for r in running} | {r[0] for r in waiting})
    if not keys:
        return []
    usage = {
        r[0][len(KEY) :]: r for r in conn.execute(lim.usage, (lim.pack([key_subject(k) for k in keys]),))
    }
    counts = {r[0]: int(r[1]) for r in conn.execute(lim.waiting_of, (lim.pack(keys),))}
    book = LimitBook(limit_of(r) for r in conn.execute(lim.all))
    out = []
    for k in keys:
        u = usage.get(k)
        governing = book.for_key(k)
        tokens = None
        if governing is not None and governing.rate:
            tokens = refill(governing, u[2] if u else None, u[3] if u else None, now)
        out.append(KeyUsage(k, int(u[1]) if u else 0, counts.get(k, 0), governing, tokens))
    out.sort(key=lambda ku: (-(ku.running + ku.waiting), ku.key))
    return out[:limit]


def key_census(
    conn: Connection, q: Queries, top_n: int
) -> tuple[list[tuple[str, int]], int, list[tuple[str, int]], int]:
    """The ``top_n`` keys by running tasks and by leasable tasks, and the totals of every key."""
    lim = q.limits
    running = [
        (r[0], int(r[1])) for r in conn.execute(lim.key_running, {"n": 4, "prefix": KEY, "lim": top_n})
    ]
    waiting = [(r[0], int(r[1])) for r in conn.execute(lim.key_waiting, {"n": 0, "prefix": "", "lim": top_n})]
    running_total = int(conn.execute(lim.running_total).fetchone()[0])
    waiting_total = int(conn.execute(lim.waiting_total).fetchone()[0])
    return running, running_total, waiting, waiting_total


class LimitOps:
    engine: Engine
    q: Queries

    async def set_limit(self, inp: LimitInput, epoch: int, now: int) -> Limit:
        """Create or replace the limit named ``inp.name``; ``epoch`` becomes the limits' epoch."""
        return await self.engine.write(lambda conn: set_limit_job(conn, self.q, inp, epoch, now))

    async def list_limits(self) -> list[Limit]:
        return await self.engine.read(lambda conn: [limit_of(r) for r in conn.execute(self.q.limits.all)])

    async def delete_limit(self, name: str, epoch: int) -> None:
        """NotFound for an unknown name; ``epoch`` becomes the limits' epoch."""
        await self.engine.write(lambda conn: delete_limit_job(conn, self.q, name, epoch))

    async def concurrency_keys(self, prefix: str, limit: int, now: int) -> list[KeyUsage]:
        return await self.engine.read(lambda conn: key_usage(conn, self.q, prefix, limit, now))
