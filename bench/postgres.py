"""PostgreSQL backend benchmark (``make bench``; ``python -m bench postgres``).

A throwaway PostgreSQL cluster with its durable defaults (fsync, synchronous_commit=on: every
answered Send is on disk, as with SQLite's synchronous=FULL), started for the suite
(tests/pg_support.py). Each run measures, with the client code of bench/messaging.py and
bench/tasks.py, a broker on SQLite and a broker on PostgreSQL back to back, then two brokers on
one database, then pgqueuer on the same cluster:

- publish: ``Send`` with 64 in flight, and a ``Publish`` stream (one message per frame);
- drain: a subscriber takes a backlog of 20,000 and acks it;
- task cycle: 10 worker processes on ``Work`` (capacity 10 each) finishing 10,000 tasks
  submitted while they work (bench/tasks.py's ``_cycle``);
- end-to-end latency at 1,000 msgs/s for ``E2E_S`` seconds (60): p50 and p99 over the whole, and
  the p50 of the first and of the last 10 s (latency that holds: the last within 1.5x of the
  first); on one broker, and sent through broker A to a subscriber on broker B;
- serialization retries per 1,000 write jobs (``a2a_storage_retried_total`` over the jobs of
  ``a2a_storage_jobs_per_commit``, read from each broker's /metrics after its phases);
- pgqueuer (bench/pgqueuer_peer.py) doing the same 10,000 no-op jobs with 10 worker processes on a
  database of the same cluster: the task cycle is also given as a ratio of its figure.

Figures are medians of ``RUNS`` runs (``BENCH_RUNS``, default 3); ratios are taken within each
run, then the median. ``BENCH_E2E_S`` shortens the latency runs (for a quick look).
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from tests.pg_support import PgCluster, remove_cluster, start_cluster

from . import pgqueuer_peer
from .common import Proc, Report, free_port, median, spawn_broker
from .messaging import DRAIN, Client, _preload
from .tasks import _cycle

RUNS = int(os.environ.get("BENCH_RUNS", "3"))
E2E_S = float(os.environ.get("BENCH_E2E_S", "60"))
WINDOW_S = 10.0
TARGET_P50_MS, TARGET_P99_MS = 5.0, 20.0
TARGET_FLAT = 1.5  # the last 10 s' p50 within this many times the first's
TARGET_DRAIN = 0.6  # of SQLite's
TARGET_CYCLE = 0.5  # of pgqueuer's


def _broker(db: str | Path) -> Proc:
    """A broker with its HTTP listener on a known port (its /metrics)."""
    port = free_port()
    proc = spawn_broker(db, A2A_BROKER_HTTP_ADDRESS=f"127.0.0.1:{port}", A2A_BROKER_QUOTA_CALLS_PER_S="0")
    proc.http_port = port  # type: ignore[attr-defined]
    return proc


async def _storage_counts(proc: Proc) -> tuple[float, float]:
    """(groups run again, write jobs) as the broker counted them."""
    async with aiohttp.ClientSession() as s:
        async with s.get(f"http://127.0.0.1:{proc.http_port}/metrics") as r:  # type: ignore[attr-defined]
            text = await r.text()

    def value(name: str) -> float:
        m = re.search(rf"^{name} ([0-9.e+]+)$", text, re.M)
        return float(m.group(1)) if m else 0.0

    return value("a2a_storage_retried_total"), value("a2a_storage_jobs_per_commit_sum")


def _per_1000(counts: list[tuple[float, float]]) -> float:
    retried, jobs = sum(c[0] for c in counts), sum(c[1] for c in counts)
    return 1000 * retried / jobs if jobs else 0.0


async def _one_broker(db: str | Path, cycle_db: str | Path) -> dict[str, float]:
    """Send, Publish, drain, the e2e latency over E2E_S, on one broker; then the task cycle on a
    fresh broker and database (its workers are agents of their own)."""
    out: dict[str, float] = {}
    with _broker(db) as proc:
        c = Client(proc.address, True)
        try:
            await c.setup()
            out["send"] = await c.send_rate()
            out["publish"] = await c.publish_rate()
            await _preload(c, "sink-drain", DRAIN)
            out["drain"] = await c.drain_rate("sink-drain", DRAIN)
            e2e = await c.e2e_figures(seconds=E2E_S, window_s=WINDOW_S)
            out.update({k: e2e[k] for k in ("p50", "p99", "first_p50", "last_p50")})
            counts = [await _storage_counts(proc)]
        finally:
            await c.close()
    with _broker(cycle_db) as proc:
        out["cycle"] = await _cycle(proc.address, "work")
        counts.append(await _storage_counts(proc))
    out["retries"] = _per_1000(counts)
    return out


async def _across(url: str) -> dict[str, float]:
    """Sent through broker A, received on broker B, over E2E_S."""
    with _broker(url) as a, _broker(url) as b:
        ca, cb = Client(a.address, True), Client(b.address, True)
        try:
            await ca.setup()
            await cb.setup()
            e2e = await cb.e2e_figures(sender=ca, seconds=E2E_S, window_s=WINDOW_S)
            counts = [await _storage_counts(a), await _storage_counts(b)]
        finally:
            await ca.close()
            await cb.close()
    out = {f"across_{k}": e2e[k] for k in ("p50", "p99", "first_p50", "last_p50")}
    out["across_retries"] = _per_1000(counts)
    return out


def _new_db(cluster: PgCluster) -> str:
    return cluster.url(cluster.create_database())


def main() -> None:
    runs: dict[str, list[float]] = {}

    def keep(fig: dict[str, float]) -> None:
        for k, v in fig.items():
            runs.setdefault(k, []).append(v)

    async def measure() -> None:
        t_start = time.perf_counter()
        cluster = start_cluster(durable=True)
        try:
            with tempfile.TemporaryDirectory(prefix="bench-postgres-") as tmp:
                for i in range(RUNS):
                    s = await _one_broker(Path(tmp) / f"run{i}.db", Path(tmp) / f"cycle{i}.db")
                    p = await _one_broker(_new_db(cluster), _new_db(cluster))
                    p.update(await _across(_new_db(cluster)))
                    p["pgqueuer"] = await pgqueuer_peer._rate(_new_db(cluster))
                    fig: dict[str, Any] = {f"sqlite_{k}": v for k, v in s.items()}
                    fig.update({f"pg_{k}": v for k, v in p.items()})
                    fig["drain_ratio"] = p["drain"] / s["drain"]
                    fig["cycle_ratio"] = p["cycle"] / p["pgqueuer"]
                    fig["flat"] = p["last_p50"] / p["first_p50"]
                    fig["across_flat"] = p["across_last_p50"] / p["across_first_p50"]
                    keep(fig)
                    print(
                        f"[bench] postgres run {i + 1}/{RUNS} done ({time.perf_counter() - t_start:.0f} s): "
                        + ", ".join(f"{k}={v:.3g}" for k, v in fig.items()),
                        flush=True,
                    )
        finally:
            remove_cluster(cluster)

    asyncio.run(measure())
    m = {k: median(v) for k, v in runs.items()}
    _report(m).print()


def _report(m: dict[str, float]) -> Report:
    def met(ok: bool) -> str:
        return "met" if ok else "MISSED"

    r = Report(
        f"PostgreSQL backend (median of {RUNS} runs; fsync and synchronous_commit on; e2e over {E2E_S:.0f} s)"
    )
    r.note(
        f"SQLite (synchronous=FULL) in the same runs: Send {m['sqlite_send']:,.0f}/s, Publish"
        f" {m['sqlite_publish']:,.0f}/s, drain {m['sqlite_drain']:,.0f}/s,"
        f" task cycle {m['sqlite_cycle']:,.0f}/s,"
        f" e2e p50 {m['sqlite_p50']:.2f} ms (first 10 s {m['sqlite_first_p50']:.2f}, last"
        f" {m['sqlite_last_p50']:.2f}), p99 {m['sqlite_p99']:.2f} ms"
    )
    r.note(
        f"pgqueuer on the same cluster: {m['pg_pgqueuer']:,.0f} jobs/s (10 workers x 10, 10,000 no-op jobs)"
    )
    r.add(
        "Send, 64 in flight",
        m["pg_send"],
        "msgs/s",
        target=f"{m['pg_send'] / m['sqlite_send']:.0%} of SQLite",
    )
    r.add(
        "Publish stream",
        m["pg_publish"],
        "msgs/s",
        target=f"{m['pg_publish'] / m['sqlite_publish']:.0%} of SQLite",
    )
    r.add(
        "drain 20,000 with acks", m["pg_drain"], "msgs/s",
        target=f"{m['drain_ratio']:.0%} of SQLite; target >= 60%: {met(m['drain_ratio'] >= TARGET_DRAIN)}",
    )  # fmt: skip
    r.add(
        "task cycle, 10 workers on Work", m["pg_cycle"], "tasks/s",
        target=f"{m['cycle_ratio']:.0%} of pgqueuer's;"
        f" target >= 50%: {met(m['cycle_ratio'] >= TARGET_CYCLE)}",
    )  # fmt: skip
    for prefix, label in (("pg_", "one broker"), ("pg_across_", "sent on A, received on B")):
        flat = m["flat" if prefix == "pg_" else "across_flat"]
        r.add(
            f"e2e p50 at 1,000 msgs/s, {label}", m[prefix + "p50"], "ms",
            target=f"target <= 5 ms: {met(m[prefix + 'p50'] <= TARGET_P50_MS)}",
        )  # fmt: skip
        r.add(
            f"e2e p99 at 1,000 msgs/s, {label}", m[prefix + "p99"], "ms",
            target=f"target <= 20 ms: {met(m[prefix + 'p99'] <= TARGET_P99_MS)}",
        )  # fmt: skip
        r.add(
            f"  p50 of the first 10 s / of the last 10 s, {label}", m[prefix + "first_p50"], "ms",
            target=f"last {m[prefix + 'last_p50']:.2f} ms = {flat:.2f}x;"
            f" target <= 1.5x: {met(flat <= TARGET_FLAT)}",
        )  # fmt: skip
    r.add("serialization retries per 1,000 write jobs, one broker", m["pg_retries"], "")
    r.add("serialization retries per 1,000 write jobs, two brokers", m["pg_across_retries"], "")
    return r


if __name__ == "__main__":
    main()
