"""Calculated priority and retry backoff: the task queue's arithmetic, in one place.

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
(submission order). Aging adds the same amount to every task per second, so
ordering by ``calculated(t)`` equals ordering by the time-invariant key::

    dispatch_rank = priority + urgency - created_at / A

which is stored and indexed. Urgency does change with time; it moves in steps,
and the sweeper re-ranks the ready tasks whose step changed (and every state
change recomputes it), so the stored rank is exact to within one step and one
sweeper period. ``calculated_priority`` as reported is ``dispatch_rank + t / A``.

Retry backoff
-------------
The delay before retry ``n`` (1 for the first retry) is::

    min(initial * multiplier ** (n - 1), max_backoff) * (1 + 0.2 * u),  u uniform in [0, 1)

exponential, capped, with up to 20 % jitter so that tasks failed together do
not all come back at once.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

US = 1_000_000
URGENCY_STEPS = 20
JITTER = 0.2


@dataclass(frozen=True)
class PriorityPolicy:
    aging_s: float = 300.0
    urgency_weight: float = 10.0
    urgency_horizon_s: float = 3600.0

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

    def calculated(self, rank: float, now_us: int) -> float:
        """The calculated priority at ``now_us`` of a task with this rank."""
        return rank + now_us / (self.aging_s * US)


def backoff_us(
    retry: int, initial_us: int, multiplier: float, max_us: int, rng: random.Random | None = None
) -> int:
    """Delay before retry number ``retry`` (1-based): exponential, capped, jittered."""
    base = min(initial_us * multiplier ** max(0, retry - 1), float(max_us))
    u = (rng or random).random()
    return int(base * (1.0 + JITTER * u))
