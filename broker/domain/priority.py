"""Calculated priority: the order in which ready tasks are leased.

Calculated priority
-------------------
At time ``t`` (seconds), a task's calculated priority is::

    calculated(t) = priority                      # base, 0-10 as submitted
                  + urgency(t)                    # 0 .. W as the deadline nears
                  + (t - created_at) / A          # aging: +1 per A seconds waited

    urgency(t) = W * step(clamp(1 - (deadline - t) / H, 0, 1))   # 0 without a deadline
    step(x)    = floor(x * S) / S                                # S steps

with ``A`` = ``task_aging_s`` (default 300 s: a priority-0 task that has waited
50 minutes overtakes a fresh priority-10 one, so nothing starves), ``W`` =
``task_urgency_weight`` (default 10: a task at or past its deadline gains a
full priority band), ``H`` = ``task_urgency_horizon_s`` (default 3600 s:
urgency starts rising an hour before the deadline) and ``S`` = 20 (urgency
moves in steps of W/20).

Dispatch takes the highest calculated priority first, then the oldest
(submission order): ``best_first``. Aging adds the same amount to every task per second, so
ordering by ``calculated(t)`` equals ordering by the time-invariant key::

    dispatch_rank = priority + urgency - created_at / A

which is stored and indexed. Urgency does change with time; it moves in steps,
and the sweeper re-ranks the ready tasks whose step changed (and every state
change recomputes it), so the stored rank is exact to within one step and one
sweeper period. ``calculated_priority`` as reported is ``dispatch_rank + t / A``.

The delay before a retry is ``retry.py``'s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

US = 1_000_000
URGENCY_STEPS = 20


class PrioritySettings(Protocol):
    """The settings the policy is made of (``broker.config.Settings`` has them)."""

    task_aging_s: float
    task_urgency_weight: float
    task_urgency_horizon_s: float


@dataclass(frozen=True)
class PriorityPolicy:
    aging_s: float = 300.0
    urgency_weight: float = 10.0
    urgency_horizon_s: float = 3600.0

    @property
    def aging_us(self) -> float:
        """The aging period A, in microseconds."""
        return self.aging_s * US

    @classmethod
    def from_settings(cls, s: PrioritySettings) -> PriorityPolicy:
        return cls(s.task_aging_s, s.task_urgency_weight, s.task_urgency_horizon_s)

    def urgency(self, deadline_us: int | None, now_us: int) -> float:
        """Deadline urgency at ``now_us``, in steps of weight / URGENCY_STEPS."""
        if deadline_us is None:
            return 0.0
        left_s = (deadline_us - now_us) / US
        closeness = 1.0 - left_s / self.urgency_horizon_s
        closeness = min(1.0, max(0.0, closeness))
        return self.urgency_weight * math.floor(closeness * URGENCY_STEPS) / URGENCY_STEPS

    def rank(self, priority: int, urgency: float, created_at_us: int) -> float:
        """The stored, time-invariant dispatch key (see the module docstring)."""
        return priority + urgency - created_at_us / (self.aging_s * US)

    def ranked(
        self, priority: int, deadline_us: int | None, created_at_us: int, now_us: int
    ) -> tuple[float, float]:
        """(urgency, rank) of a task as of ``now_us``: what a task becoming ready is stored with."""
        urgency = self.urgency(deadline_us, now_us)
        return urgency, self.rank(priority, urgency, created_at_us)

    def urgency_window_end(self, now_us: int) -> int:
        """Deadlines before this time give some urgency now (later ones none): the tasks to re-rank."""
        return now_us + int(self.urgency_horizon_s * US)

    def calculated(self, rank: float, now_us: int) -> float:
        """The calculated priority at ``now_us`` of a task with this rank."""
        return rank + now_us / (self.aging_s * US)


def best_first(candidates: list[tuple[float, int, str]], n: int) -> list[str]:
    """The ids of the ``n`` best of (dispatch rank, submission seq, task id) candidates, best
    first: the highest rank, then the oldest."""
    candidates.sort(key=lambda c: (-c[0], c[1]))
    return [c[2] for c in candidates[:n]]
