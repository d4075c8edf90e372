"""An agent's performance record, from the tasks it finished lately (pure rules): how many it
completed and failed, its success rate, and the mean and 95th percentile of their run time (the
last attempt's, from its lease to its end)."""

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
