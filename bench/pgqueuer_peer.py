"""pgqueuer, a PostgreSQL task queue in Python (asyncpg), doing the task cycle the broker's bench
does (bench/tasks.py), so that ``make bench`` reports the broker's figure as a ratio of a peer's
measured in the same run: 10 worker processes, each taking up to 10 jobs at a time; 10,000 no-op
jobs (256-byte payloads) enqueued in batches of 100 while they work; the rate is the jobs over
the time from the first enqueue to the last job done. The cluster is a throwaway one with the
durable defaults (fsync and synchronous_commit on), as the broker's PostgreSQL runs use.

``python -m bench.pgqueuer_peer worker DSN NAME`` is one worker process (it prints ``done N``).
pgqueuer is a bench-only dependency (the ``[bench]`` extra, pinned).
"""

from __future__ import annotations

import asyncio
import sys
import time

from .common import median, workers_done

JOBS = 10_000
WORKERS = 10
CAPACITY = 10
BATCH = 100
ENTRYPOINT = "noop"


async def _worker(dsn: str) -> None:
    import asyncpg
    from pgqueuer import PgQueuer
    from pgqueuer.db import AsyncpgDriver
    from pgqueuer.models import Job

    conn = await asyncpg.connect(dsn=dsn)
    pgq = PgQueuer(AsyncpgDriver(conn))
    done = 0

    @pgq.entrypoint(ENTRYPOINT)
    async def noop(job: Job) -> None:
        nonlocal done
        done += 1
        print(f"done {done}", flush=True)  # every job: the total is exact at the end

    await pgq.run(batch_size=CAPACITY)


async def _rate(dsn: str) -> float:
    import asyncpg
    from pgqueuer.db import AsyncpgDriver
    from pgqueuer.queries import Queries

    conn = await asyncpg.connect(dsn=dsn)
    queries = Queries(AsyncpgDriver(conn))
    await queries.install()
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.pgqueuer_peer",
            "worker",
            dsn,
            f"w{i}",
            stdout=asyncio.subprocess.PIPE,
        )
        for i in range(WORKERS)
    ]
    try:
        async with workers_done(procs, JOBS) as all_done:
            await asyncio.sleep(2.0)  # the workers connect and listen (not timed)
            payload = b"x" * 256
            t0 = time.perf_counter()
            for _ in range(JOBS // BATCH):
                await queries.enqueue([ENTRYPOINT] * BATCH, [payload] * BATCH, [0] * BATCH)
            await asyncio.wait_for(all_done.wait(), 300)
            return JOBS / (time.perf_counter() - t0)
    finally:
        await conn.close()


def rates(runs: int, cluster: object) -> list[float]:
    """The task cycle of ``runs`` runs, each on a new database of ``cluster`` (tests/pg_support)."""
    out = []
    for _ in range(runs):
        dsn = cluster.url(cluster.create_database())  # type: ignore[attr-defined]
        out.append(asyncio.run(_rate(dsn)))
    return out


def main() -> None:
    from tests.pg_support import remove_cluster, start_cluster

    cluster = start_cluster(durable=True)
    try:
        got = rates(3, cluster)
    finally:
        remove_cluster(cluster)
    print(f"pgqueuer task cycle ({WORKERS} workers x {CAPACITY}): median {median(got):,.0f} jobs/s of {got}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        try:
            asyncio.run(_worker(sys.argv[2]))
        except KeyboardInterrupt:
            pass
    else:
        main()
