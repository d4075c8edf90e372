"""Percentiles read from the broker's fixed-bucket histograms, as the console's latency panels
show them (Prometheus' histogram_quantile: the bucket holding the rank, linear within it)."""

from __future__ import annotations

import pytest

from broker.console.latency import latency, quantile, summary
from broker.models.stats import Hist, TaskStats

BOUNDS = (0.01, 0.1, 1.0)


def test_a_quantile_is_interpolated_within_the_bucket_holding_its_rank():
    counts = [0, 10, 0, 0]  # ten values in (0.01, 0.1]
    assert quantile(BOUNDS, counts, 0.5) == (pytest.approx(0.055), False)
    assert quantile(BOUNDS, counts, 1.0) == (0.1, False)
    assert quantile(BOUNDS, [4, 0, 0, 0], 0.5) == (0.005, False)  # the first bucket starts at 0


def test_above_the_last_bound_the_quantile_is_that_bound_marked_above():
    assert quantile(BOUNDS, [98, 1, 0, 1], 0.99) == (0.1, False)
    assert quantile(BOUNDS, [90, 0, 0, 10], 0.99) == (1.0, True)
    assert summary(BOUNDS, [90, 0, 0, 10]) == {"n": 100, "p50": 0.005556, "p50_above": False,
                                               "p99": 1.0, "p99_above": True}  # fmt: skip


def test_nothing_counted_has_no_quantile():
    assert quantile(BOUNDS, [0, 0, 0, 0], 0.5) is None
    assert summary(BOUNDS, [0, 0, 0, 0]) == {"n": 0, "p50": None, "p50_above": False, "p99": None,
                                             "p99_above": False}  # fmt: skip


def test_recent_percentiles_are_those_since_a_snapshot():
    stats = TaskStats(queue_wait=Hist(BOUNDS), run_time=Hist(BOUNDS))
    for v in (0.5, 0.5, 0.5):
        stats.queue_wait.observe(v)
    before = {"queue_wait": list(stats.queue_wait.counts), "run_time": list(stats.run_time.counts)}
    stats.queue_wait.observe(0.05)
    out = latency(stats, before, 60.0)
    assert out["queue_wait"]["all"]["n"] == 4 and out["queue_wait"]["recent"]["n"] == 1
    assert 0.01 < out["queue_wait"]["recent"]["p99"] <= 0.1 and out["queue_wait"]["recent"]["window_s"] == 60
    assert out["run_time"]["all"]["n"] == 0
