"""Concurrency keys (``python -m bench fairness``): the task cycle of bench/tasks.py (10 worker
processes of capacity 10 on Work streams, 10,000 tasks submitted in SubmitGraph batches of 100
while they work) with every task under one of 100 concurrency keys (in turn: each batch spreads
over all of them; no limit set, so every task goes through the fair-share dispatch), against the
same cycle without keys. Each pair runs on fresh brokers, in alternating order, and the figure
is the median of the per-pair ratios (steadier than a ratio of medians on a loaded machine), with
the broker's CPU per task for each. Target: the keyed cycle at least 90% of the unkeyed one.

``python -m bench.fairness unkeyed`` runs only the unkeyed cycle (to compare a tree without
concurrency keys).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

from bench.common import Report, median, spawn_broker
from bench.tasks import TASKS, _cycle

RUNS = 5
KEYS = 100
TARGET = 0.90


def _one(db: Path, keys: int) -> tuple[float, float]:
    """(tasks/s, broker CPU us per task) of one cycle on a fresh broker."""
    with spawn_broker(db) as broker:
        cpu0 = broker.cpu_s()
        rate = asyncio.run(_cycle(broker.address, "work", keys))
        return rate, (broker.cpu_s() - cpu0) / TASKS * 1e6


def main(argv: list[str] | None = None) -> None:
    only_unkeyed = "unkeyed" in (argv if argv is not None else sys.argv[1:])
    t_start = time.perf_counter()
    plain: list[tuple[float, float]] = []
    keyed: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory(prefix="a2a-bench-fairness-") as tmp:
        for run in range(RUNS):
            order = [0] if only_unkeyed else ([0, KEYS] if run % 2 == 0 else [KEYS, 0])
            for keys in order:
                (keyed if keys else plain).append(_one(Path(tmp) / f"r{run}-k{keys}.db", keys))
            line = f"  [fairness] run {run + 1}: no keys {plain[-1][0]:,.0f} tasks/s ({plain[-1][1]:,.0f} us)"
            if not only_unkeyed:
                line += f", {KEYS} keys {keyed[-1][0]:,.0f} tasks/s ({keyed[-1][1]:,.0f} us)"
            print(line, flush=True)
    report = Report(
        f"Concurrency keys (medians of {RUNS} runs; the in-band task cycle of bench/tasks.py,"
        f" {TASKS:,} tasks)"
    )
    report.add("whole cycle, no concurrency key", median([r for r, _ in plain]), "tasks/s")
    report.add("broker CPU per task, no key", median([c for _, c in plain]), "us")
    if not only_unkeyed:
        ratio = median([k[0] / p[0] for k, p in zip(keyed, plain, strict=True)])
        report.add(
            f"whole cycle, each task under one of {KEYS} keys",
            median([r for r, _ in keyed]),
            "tasks/s",
            target=f">= {TARGET:.0%} of no keys",
        )
        report.note(f"keyed / unkeyed, median of the per-run ratios: {ratio:.0%}")
        report.add(f"broker CPU per task, {KEYS} keys", median([c for _, c in keyed]), "us")
    report.note(f"({time.perf_counter() - t_start:.0f} s)")
    report.print()


if __name__ == "__main__":
    main()
