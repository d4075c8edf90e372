"""An agent's performance record, from the tasks it finished lately (pure rules): how many it
completed and failed, its success rate, and the mean and 95th percentile of their run time (the
last attempt's, from its lease to its end); and how records rank agents when routing by record
(``preference``, ``deferral``)."""

from __future__ import annotations

import math

from ..models.agents import AgentRecord


def record(outcomes: list[tuple[bool, int]], window_s: float) -> AgentRecord:
    """``outcomes``: (completed, run time in microseconds) of the tasks the agent finished
    within the window, newest first (failed for good when not completed)."""
    done = sum(1 for ok, _ in outcomes if ok)
    failed = len(outcomes) - done
    runs = sorted(us for _, us in outcomes)
    mean = sum(runs) // len(runs) if runs else 0
    p95 = runs[max(0, math.ceil(0.95 * len(runs)) - 1)] if runs else 0
    rate = done / len(outcomes) if outcomes else 0.0
    return AgentRecord(done, failed, rate, mean, p95, window_s)


# Routing by record: an able agent with free capacity that is woken for a new task waits this long
# for each waiting agent with a better record (at most ``MAX_DEFERRALS`` steps) before it leases,
# so the better agent leases first. A preference, not a reservation: if the better one does not
# take the task, the next one does, a few milliseconds later.
DEFER_STEP_S = 0.01
MAX_DEFERRALS = 3


def preference(rec: AgentRecord) -> tuple[float, int]:
    """Higher is better: the success rate, smoothed so that an agent with no record yet ranks
    as one with one success and one failure (1/2) rather than as perfect or hopeless, then the
    faster mean run time."""
    n = rec.tasks_completed + rec.tasks_failed
    return ((rec.tasks_completed + 1) / (n + 2), -rec.mean_run_us)


NO_RECORD = (0.5, 0)  # the preference of an agent with no finished task (or none read yet)


def deferral(mine: tuple[float, int], others: list[tuple[float, int]]) -> float:
    """How long to hold back, given one's own preference and those of the other able, waiting
    agents with free capacity."""
    better = sum(1 for o in others if o > mine)
    return min(better, MAX_DEFERRALS) * DEFER_STEP_S
