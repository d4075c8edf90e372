"""Storage engine benchmark (``python -m bench engine``): group commit at work.

Durable (synchronous=FULL) one-row write jobs through SqliteEngine, with 1 and
with 64 in flight, in the same run: the ratio is what sharing commits buys.
Medians of 3 runs.
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
import time
from pathlib import Path

from bench.common import median
from broker.storage.sqlite.engine import SqliteEngine

RUNS = 3


async def _rate(path: Path, in_flight: int, n: int) -> tuple[float, float]:
    engine = SqliteEngine(str(path), synchronous="FULL")
    await engine.open()
    try:
        sem = asyncio.Semaphore(in_flight)

        async def one(i: int) -> None:
            async with sem:
                await engine.write(lambda conn: conn.execute("INSERT INTO t (v) VALUES (?)", (i,)))

        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        elapsed = time.perf_counter() - t0
        return n / elapsed, engine.jobs / max(engine.commits, 1)
    finally:
        await engine.close()


def main() -> None:
    results: dict[int, list[tuple[float, float]]] = {1: [], 64: []}
    for _ in range(RUNS):
        for in_flight, n in ((1, 500), (64, 5000)):
            with tempfile.TemporaryDirectory(prefix="a2a-bench-engine-") as tmp:
                db = Path(tmp) / "e.db"
                with sqlite3.connect(db) as conn:
                    conn.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v INTEGER)")
                results[in_flight].append(asyncio.run(_rate(db, in_flight, n)))
    print(f"\n== storage engine (median of {RUNS} runs; synchronous=FULL, one-row write jobs)")
    one = median([r for r, _ in results[1]])
    many = median([r for r, _ in results[64]])
    per_commit = median([j for _, j in results[64]])
    print(f"  1 write in flight    {one:10,.0f} durable writes/s")
    print(
        f"  64 writes in flight  {many:10,.0f} durable writes/s"
        f"  ({many / one:.1f}x; {per_commit:.1f} jobs/commit)"
    )


if __name__ == "__main__":
    main()
