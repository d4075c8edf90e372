"""Concurrency keys: which limits govern a task, whether it may start under them, and in which
order keys with ready work take their turns.

Limits
------
A limit (``models.limits.Limit``) governs either each concurrency key its ``key`` matches (an
exact key, or a pattern in which ``*`` stands for any characters; each matching key on its own),
or every task requiring its ``capability`` (all of them together, keyless ones too). A key matched
by several limits follows the most specific (``LimitBook.for_key``): an exact key over a pattern,
then the pattern with the most characters other than ``*``, then the first name.

What a running task counts against are its *subjects*: ``key:<its key>`` (counted for every keyed
task, limited or not: the per-key running counts are the same numbers) and ``cap:<capability>``
for each limited capability it requires. A limit allows at most ``max_running`` tasks of a
subject running at once, and at most ``rate`` starts per ``per``: a token bucket holding up to
``burst`` starts, refilled continuously (``refill``). A task starts only when every one of its
subjects has room (``Allowance``); otherwise it stays ready, and so do the tasks behind it in its
key, while other keys go on.

Fair share
----------
The ready tasks of one key form a queue in the usual dispatch order (calculated priority, then
age: ``priority.best_first``). Keys take turns by the *standing* of their queue's head::

    standing = rank - max(0, served_at - created_at) / A

where ``rank`` is the head's stored dispatch rank (``priority + urgency - created_at / A``),
``served_at`` the last time the key was given a task, and ``A`` the aging period. A head ages from
its submission or from its key's last turn, whichever is later: right after its turn, a key
stands as if its head had just been submitted, behind every other key whose head (of the same
priority) has been waiting since. So keys with ready work of one priority are served round
robin, a higher priority still goes first, and aging still lifts a key that has waited long
enough over higher priorities, as it lifts any task. A task without a key is its own queue, never
served: its standing is its rank, exactly its place without keys.

Ties go to the key served longer ago, then to the older task (``pick``).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ..models.limits import Limit

KEY = "key:"
CAP = "cap:"


def key_subject(key: str) -> str:
    return KEY + key


def cap_subject(capability: str) -> str:
    return CAP + capability


# ---------------------------------------------------------------- which limit governs


def matches(pattern: str, key: str) -> bool:
    """Whether ``key`` matches ``pattern`` (``*``: any characters, none included)."""
    parts = pattern.split("*")
    if len(parts) == 1:
        return key == pattern
    first, *middle, last = parts
    if not key.startswith(first) or not key.endswith(last) or len(key) < len(first) + len(last):
        return False
    at, end = len(first), len(key) - len(last)
    for part in middle:
        found = key.find(part, at, end)
        if found < 0:
            return False
        at = found + len(part)
    return True


def specificity(pattern: str) -> tuple[int, int]:
    """Larger is more specific: an exact key over any pattern, then more literal characters."""
    return (0 if "*" in pattern else 1, len(pattern) - pattern.count("*"))


class LimitBook:
    """The limits in force, and which governs a key or a capability."""

    def __init__(self, limits: Iterable[Limit] = ()) -> None:
        self.limits = sorted(limits, key=lambda lim: lim.name)
        self.by_capability: dict[str, Limit] = {}
        self._exact: dict[str, Limit] = {}
        self._patterns: list[Limit] = []
        for lim in self.limits:
            if lim.capability is not None:
                self.by_capability.setdefault(lim.capability, lim)
            elif lim.key is not None and "*" not in lim.key:
                self._exact.setdefault(lim.key, lim)
            elif lim.key is not None:
                self._patterns.append(lim)
        # Most specific first; the sort is stable, so names break ties.
        self._patterns.sort(key=lambda lim: specificity(lim.key or ""), reverse=True)
        self._of_key: dict[str, Limit | None] = {}

    @property
    def capabilities(self) -> frozenset[str]:
        return frozenset(self.by_capability)

    def for_key(self, key: str) -> Limit | None:
        found = self._of_key.get(key, self)
        if found is self:
            found = self._exact.get(key)
            if found is None:
                found = next((p for p in self._patterns if matches(p.key or "", key)), None)
            if len(self._of_key) < 100_000:
                self._of_key[key] = found
        return found  # type: ignore[return-value]

    def subjects(self, key: str | None, capabilities: Iterable[str]) -> tuple[str, ...]:
        """What a task of ``key`` requiring ``capabilities`` counts against while it runs."""
        caps = tuple(cap_subject(c) for c in capabilities if c in self.by_capability)
        return caps if key is None else (key_subject(key), *caps)

    def bounds_running(self, subjects: Iterable[str]) -> bool:
        """Whether a task holding these subjects counts against a limit on running tasks (so that
        its end leaves room for another)."""
        return any((lim := self.of_subject(s)) is not None and lim.max_running for s in subjects)

    def of_subject(self, subject: str) -> Limit | None:
        if subject.startswith(KEY):
            return self.for_key(subject[len(KEY) :])
        return self.by_capability.get(subject[len(CAP) :])


# ---------------------------------------------------------------- the token bucket


def refill(limit: Limit, tokens: float | None, refilled_at: int | None, now: int) -> float:
    """The starts a subject's bucket holds at ``now`` (a bucket never used is full)."""
    assert limit.rate and limit.per_us and limit.burst
    if tokens is None or refilled_at is None:
        return float(limit.burst)
    gained = max(0, now - refilled_at) * limit.rate / limit.per_us
    return min(float(limit.burst), tokens + gained)


def next_start_at(limit: Limit, tokens: float, now: int) -> int:
    """When a bucket holding ``tokens`` (< 1) at ``now`` holds one start again."""
    assert limit.rate and limit.per_us
    return now + max(1, math.ceil((1.0 - tokens) * limit.per_us / limit.rate))


@dataclass
class Usage:
    """A subject as stored: tasks running under it, and its bucket (None: never used)."""

    running: int = 0
    tokens: float | None = None
    refilled_at: int | None = None


class Allowance:
    """Room left under the limits during one lease: starts each subject may still take."""

    def __init__(self, book: LimitBook, usage: dict[str, Usage], now: int) -> None:
        self.now = now
        self._slots: dict[str, float] = {}
        self.buckets: dict[str, float] = {}  # subjects with a rate: tokens now (spent as taken)
        self.rated: dict[str, Limit] = {}
        for subject, u in usage.items():
            self.add(book, subject, u)

    def add(self, book: LimitBook, subject: str, u: Usage) -> None:
        lim = book.of_subject(subject)
        room = math.inf
        if lim is not None and lim.max_running:
            room = max(0, lim.max_running - u.running)
        if lim is not None and lim.rate:
            self.rated[subject] = lim
            self.buckets[subject] = refill(lim, u.tokens, u.refilled_at, self.now)
        self._slots[subject] = room

    def room(self, subjects: Iterable[str]) -> float:
        """How many more tasks with these subjects may start now."""
        out = math.inf
        for s in subjects:
            out = min(out, self._slots.get(s, math.inf))
            if s in self.buckets:
                out = min(out, math.floor(self.buckets[s]))
        return out

    def blocking(self, subjects: Iterable[str]) -> str | None:
        """The first subject without room for one more start (None: it may start)."""
        for s in subjects:
            if self._slots.get(s, math.inf) < 1 or self.buckets.get(s, math.inf) < 1:
                return s
        return None

    def take(self, subjects: Iterable[str]) -> None:
        for s in subjects:
            if s in self._slots:
                self._slots[s] -= 1
            if s in self.buckets:
                self.buckets[s] -= 1

    def retry_at(self, subject: str) -> int | None:
        """When ``subject`` has a start again, if only its rate holds it back."""
        lim = self.rated.get(subject)
        if lim is None or self._slots.get(subject, math.inf) < 1:
            return None
        return next_start_at(lim, self.buckets[subject], self.now)


# ---------------------------------------------------------------- fair share


def standing(rank: float, created_at: int, served_at: int, aging_us: float) -> float:
    """A key's standing when the head of its queue has ``rank`` (see the module docstring)."""
    return rank - max(0, served_at - created_at) / aging_us


def standing_sql(rank: str, created_at: str, served_at: str, aging_us: str, greatest: str) -> str:
    """``standing`` in SQL, of the expressions given (``greatest``: the dialect's two-argument
    max; ``aging_us`` must be a floating-point value, so that the division is not an integer one)."""
    return f"{rank} - {greatest}(0, {served_at} - {created_at}) / {aging_us}"


def _level(x: float) -> float:
    """A standing as ``pick`` compares it: to a millionth of a point (ranks are large numbers, and
    the same standing reached two ways differs in its last bits; a millionth is a fraction of a
    second of age), so that equal standings tie and the key served longer ago goes first."""
    return round(x, 6)


@dataclass(frozen=True)
class Candidate:
    """A ready task as dispatch sees it."""

    rank: float
    seq: int
    task_id: str
    created_at: int


@dataclass
class Group:
    """A queue taking turns: one key's ready tasks of one capability set, fetched best first
    (``more``: it may hold more than were fetched), or one task without a key."""

    tasks: list[Candidate]
    subjects: tuple[str, ...] = ()
    key: str | None = None
    served_at: int = 0
    more: bool = False
    ref: object = None  # the caller's own tag (which capability set)


@dataclass
class Picked:
    task_ids: list[str] = field(default_factory=list)
    served: list[Group] = field(default_factory=list)  # keyed groups given a task, in turn
    wants: Group | None = None  # stopped: this group ran out of fetched tasks and may have more
    retry_at: int | None = None  # a rate limit held a task back: when its bucket has a start


def pick(
    groups: list[Group], n: int, now: int, aging_us: float, allowance: Callable[[], Allowance]
) -> Picked:
    """Up to ``n`` task ids, taking turns between the groups by standing (ties: served longer
    ago, then the older task); a group whose next task has no room under its limits waits, with
    the tasks behind it. ``allowance`` makes a fresh one (``pick`` spends it)."""
    room = allowance()
    heap: list[tuple[float, int, int, int, int]] = []
    for i, g in enumerate(groups):
        if g.tasks:
            c = g.tasks[0]
            heap.append(
                (-_level(standing(c.rank, c.created_at, g.served_at, aging_us)), g.served_at, 0, c.seq, i)
            )
    heapq.heapify(heap)
    out = Picked()
    at = [0] * len(groups)
    served: set[int] = set()
    turn = 0
    while heap and len(out.task_ids) < n:
        *_, i = heapq.heappop(heap)
        g = groups[i]
        c = g.tasks[at[i]]
        held = room.blocking(g.subjects)
        if held is not None:
            when = room.retry_at(held)
            if when is not None and (out.retry_at is None or when < out.retry_at):
                out.retry_at = when
            continue  # the group waits, in order
        room.take(g.subjects)
        out.task_ids.append(c.task_id)
        at[i] += 1
        if g.key is not None and id(g) not in served:
            served.add(id(g))
            out.served.append(g)
        if at[i] < len(g.tasks):
            nxt = g.tasks[at[i]]
            turn += 1
            level = _level(standing(nxt.rank, nxt.created_at, now, aging_us))
            heapq.heappush(heap, (-level, now, turn, nxt.seq, i))
        elif g.more and len(out.task_ids) < n:
            out.wants = g
            return out
    return out
