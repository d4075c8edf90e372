"""Latency percentiles for the console, from the histograms the broker keeps (broker/models/stats.py):
a task's queue wait (submission -> first assignment) and an attempt's run time (assignment -> its
end), since the start and over the rate chart's window (the difference of two snapshots).

A percentile is read from the buckets as Prometheus' ``histogram_quantile`` reads them: the
bucket holding the rank, then linearly within it. Above the last bound it is that bound, marked
``above``."""

from __future__ import annotations

from typing import Any

from ..models.stats import Hist, TaskStats

PANELS = ("queue_wait", "run_time")


def quantile(bounds: tuple[float, ...], counts: list[int], q: float) -> tuple[float, bool] | None:
    """(the ``q`` quantile in the buckets' unit, whether it lies above the last bound); None
    when nothing was counted."""
    n = sum(counts)
    if n == 0:
        return None
    rank = q * n
    below = 0
    for i, c in enumerate(counts):
        if c and below + c >= rank:
            if i == len(bounds):
                return bounds[-1], True
            lo = bounds[i - 1] if i else 0.0
            return lo + (bounds[i] - lo) * (rank - below) / c, False
        below += c
    return bounds[-1], True  # unreachable: the last bucket holds the rest


def summary(bounds: tuple[float, ...], counts: list[int]) -> dict[str, Any]:
    out: dict[str, Any] = {"n": sum(counts)}
    for name, q in (("p50", 0.5), ("p99", 0.99)):
        found = quantile(bounds, counts, q)
        out[name] = None if found is None else round(found[0], 6)
        out[f"{name}_above"] = bool(found and found[1])
    return out


def snapshot(stats: TaskStats) -> dict[str, list[int]]:
    return {name: list(_hist(stats, name).counts) for name in PANELS}


def latency(stats: TaskStats, since: dict[str, list[int]] | None, window_s: float) -> dict[str, Any]:
    """Each panel since the start (``all``) and since the snapshot ``since`` (``recent``)."""
    out: dict[str, Any] = {}
    for name in PANELS:
        h = _hist(stats, name)
        start = since[name] if since else [0] * len(h.counts)
        recent = [a - b for a, b in zip(h.counts, start, strict=True)]
        out[name] = {
            "all": summary(h.bounds, h.counts),
            "recent": {**summary(h.bounds, recent), "window_s": round(window_s)},
        }
    return out


def _hist(stats: TaskStats, name: str) -> Hist:
    h: Hist = getattr(stats, name)
    return h
