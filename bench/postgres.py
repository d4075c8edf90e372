"""PostgreSQL backend benchmark (``make bench``; ``python -m bench postgres``).

A throwaway PostgreSQL cluster with its durable defaults (fsync, synchronous_commit=on: every
answered Send is on disk, as with SQLite's synchronous=FULL), started for the suite
(tests/pg_support.py). Each run measures, with bench/messaging.py's client code, a broker on SQLite
and a broker on PostgreSQL back to back: Send (64 in flight), SendBatch (batches of 100) and the
drain of a 20,000 backlog with acks; then two brokers on one database, the sender on one and the
subscriber on the other, for the end-to-end latency across brokers at 1,000 msgs/s (the wake-up
travels by NOTIFY). Figures are medians of 3 runs; ratios are PostgreSQL / SQLite in the same run.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from tests.pg_support import remove_cluster, start_cluster

from .common import Report, median, spawn_broker
from .messaging import DRAIN, Client, _preload

RUNS = 3
PHASES = ("send", "batch", "drain")


async def _figures(address: str) -> dict[str, float]:
    c = Client(address, True)
    out: dict[str, float] = {}
    try:
        await c.setup()
        out["send"] = await c.send_rate()
        out["batch"] = await c.batch_rate()
        await _preload(c, "sink-drain", DRAIN)
        out["drain"] = await c.drain_rate("sink-drain", DRAIN)
        out["p50"], out["p99"] = await c.e2e_latency()
    finally:
        await c.close()
    return out


async def _across(url: str) -> dict[str, float]:
    with spawn_broker(url) as a, spawn_broker(url) as b:
        ca, cb = Client(a.address, True), Client(b.address, True)
        try:
            await ca.setup()
            await cb.setup()
            p50, p99 = await cb.e2e_latency(sender=ca)
        finally:
            await ca.close()
            await cb.close()
    return {"across_p50": p50, "across_p99": p99}


def main() -> None:
    sqlite: dict[str, list[float]] = {}
    pg: dict[str, list[float]] = {}
    ratios: dict[str, list[float]] = {}

    def keep(into: dict[str, list[float]], fig: dict[str, float]) -> None:
        for k, v in fig.items():
            into.setdefault(k, []).append(v)

    async def measure() -> None:
        t_start = time.perf_counter()
        cluster = start_cluster(durable=True)
        try:
            with tempfile.TemporaryDirectory(prefix="bench-postgres-") as tmp:
                for i in range(RUNS):
                    with spawn_broker(Path(tmp) / f"run{i}.db") as proc:
                        s = await _figures(proc.address)
                    url = cluster.url(cluster.create_database())
                    with spawn_broker(url) as proc:
                        p = await _figures(proc.address)
                    p.update(await _across(cluster.url(cluster.create_database())))
                    keep(sqlite, s)
                    keep(pg, p)
                    keep(ratios, {k: p[k] / s[k] for k in (*PHASES, "p50", "p99")})
                    print(
                        f"[bench] postgres run {i + 1}/{RUNS} done ({time.perf_counter() - t_start:.0f} s)",
                        flush=True,
                    )
        finally:
            remove_cluster(cluster)

    asyncio.run(measure())
    s = {k: median(v) for k, v in sqlite.items()}
    p = {k: median(v) for k, v in pg.items()}
    q = {k: median(v) for k, v in ratios.items()}
    r = Report(f"PostgreSQL backend (median of {RUNS} runs; fsync and synchronous_commit on)")
    r.note(
        f"SQLite (synchronous=FULL) in the same runs: Send {s['send']:,.0f}/s, SendBatch {s['batch']:,.0f}/s,"
        f" drain {s['drain']:,.0f}/s, e2e p50 {s['p50']:.2f} ms, p99 {s['p99']:.2f} ms"
    )
    r.add("Send, 64 in flight", p["send"], "msgs/s", None, f"{q['send']:.0%} of SQLite")
    r.add("SendBatch, batches of 100, 8 in flight", p["batch"], "msgs/s", None, f"{q['batch']:.0%} of SQLite")
    r.add("drain 20,000 with acks", p["drain"], "msgs/s", None, f"{q['drain']:.0%} of SQLite")
    r.add("end-to-end p50, one broker", p["p50"], "ms", None, f"{q['p50']:.0%} of SQLite's")
    r.add("end-to-end p99, one broker", p["p99"], "ms", None, f"{q['p99']:.0%} of SQLite's")
    r.add("end-to-end p50, sent on A, received on B", p["across_p50"], "ms")
    r.add("end-to-end p99, sent on A, received on B", p["across_p99"], "ms")
    r.print()


if __name__ == "__main__":
    main()
