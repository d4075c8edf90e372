"""The calculated-priority and backoff arithmetic (broker/domain/priority.py, retry.py)."""

from __future__ import annotations

import random

import pytest

from broker.domain.priority import PriorityPolicy, best_first
from broker.domain.retry import backoff_us

US = 1_000_000
P = PriorityPolicy(aging_s=300, urgency_weight=10, urgency_horizon_s=3600)


def test_urgency_is_zero_without_or_far_from_a_deadline_and_full_at_it():
    now = 1_000 * US
    assert P.urgency(None, now) == 0
    assert P.urgency(now + 7200 * US, now) == 0
    assert P.urgency(now, now) == 10
    assert P.urgency(now - 60 * US, now) == 10  # overdue stays at the maximum


def test_urgency_rises_in_steps_across_the_horizon():
    now = 0
    values = [P.urgency(now + s * US, now) for s in range(3600, -1, -60)]
    assert values == sorted(values)
    assert set(values) <= {i * 0.5 for i in range(21)}
    assert P.urgency(now + 1800 * US, now) == 5.0  # halfway through the hour


def test_ordering_by_the_stored_rank_equals_ordering_by_calculated_priority_at_any_time():
    rng = random.Random(7)
    tasks = [(rng.randint(0, 10), rng.randint(0, 3600 * US)) for _ in range(200)]
    ranks = [P.rank(p, 0.0, created) for p, created in tasks]
    by_rank = sorted(range(len(tasks)), key=lambda i: -ranks[i])
    for now in (3600 * US, 7200 * US, 10**6 * US):
        calc = [p + (now - created) / (300 * US) for p, created in tasks]
        assert by_rank == sorted(range(len(tasks)), key=lambda i: -calc[i])
        for i in range(len(tasks)):
            assert P.calculated(ranks[i], now) == pytest.approx(calc[i])


def test_aging_adds_one_point_per_aging_period():
    r = P.rank(3, 0.0, 0)
    assert P.calculated(r, 0) == pytest.approx(3)
    assert P.calculated(r, 300 * US) == pytest.approx(4)
    # a priority-0 task that waited 50 minutes outranks a fresh priority-10 one
    assert P.rank(0, 0.0, 0) > P.rank(10, 0.0, 3001 * US)


def test_backoff_is_exponential_capped_and_jittered_by_at_most_twenty_percent():
    rng = random.Random(1)
    for retry, base in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (10, 60.0)]:
        for _ in range(50):
            d = backoff_us(retry, 1 * US, 2.0, 60 * US, rng)
            assert base * US <= d <= base * 1.2 * US
    assert backoff_us(3, 0, 2.0, 60 * US, rng) == 0
    spread = {backoff_us(1, US, 2.0, 60 * US, rng) for _ in range(20)}
    assert len(spread) > 10


def test_dispatch_takes_the_highest_rank_first_then_the_oldest():
    cands = [(1.0, 5, "old-low"), (2.0, 9, "new-high"), (2.0, 3, "old-high"), (0.5, 1, "oldest-lowest")]
    assert best_first(cands, 3) == ["old-high", "new-high", "old-low"]
    assert best_first([], 3) == []
