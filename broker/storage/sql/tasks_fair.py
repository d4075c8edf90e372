"""Dispatch under concurrency keys and limits: which tasks a lease takes from the capability sets
that are *governed* (keyed tasks' sets, and sets requiring a limited capability), and what the
lease then writes (the tasks' holds, the keys' turns, the buckets).

The rules are ``broker.domain.fairness``'s: which limits govern a task, the room they leave, the
order in which keys take turns. This module reads what they need, in as few statements as the
dialect allows: the keys of a set best standing first (``key_queues``), the subjects' usage, then
the next tasks of every key it will consider in one statement; and writes the outcome in one
statement each. Sets that are not governed are read as before (``next_ready``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from ...domain import fairness
from ...domain.fairness import Allowance, Candidate, Group, Usage
from .tasks_rows import Capsets
from .tasks_tx import TaskTx

# Keys read per statement (SQLite allows 500 terms in a compound SELECT).
CHUNK = 100
# Pages of keys read past those that have no room left (saturated keys are skipped in a scan).
MAX_HEAD_PAGES = 20


@dataclass
class Choice:
    task_ids: list[str]
    holds: dict[str, list[str]] = field(default_factory=dict)  # task id -> subjects (governed ones)
    served: list[tuple[int, str]] = field(default_factory=list)  # (capset, key) given a turn
    stale: list[tuple[int, str]] = field(default_factory=list)  # key queues found without a task
    spent: list[tuple[str, float, int]] = field(default_factory=list)  # buckets after the lease
    retry_at: int | None = None


def choose(
    tx: TaskTx, capsets: Capsets, plain: list[tuple[float, int, str]], governed: list[int], n: int
) -> Choice:
    """Up to ``n`` tasks: the best of ``plain`` (candidates of sets not governed) and of the
    governed sets, keys taking turns, within the room their limits leave."""
    conn, q, book = tx.conn, tx.q, capsets.book
    usage: dict[str, Usage] = {}
    groups = [Group([Candidate(r, s, t, 0)]) for r, s, t in plain]
    retry_at: int | None = None

    def load(subjects: list[str]) -> None:
        """Read the usage of the subjects a limit governs (the others have room whatever it is)."""
        missing = [s for s in dict.fromkeys(subjects) if s not in usage and book.of_subject(s) is not None]
        if missing:
            for r in conn.execute(q.limits.usage, (q.limits.pack(missing),)).fetchall():
                usage[r[0]] = Usage(r[1], r[2], r[3])
            for s in missing:
                usage.setdefault(s, Usage())

    def room(subjects: tuple[str, ...]) -> float:
        load(list(subjects))
        return Allowance(book, {s: usage[s] for s in subjects if s in usage}, tx.now).room(subjects)

    keyed: list[tuple[int, str, int, tuple[str, ...], float]] = []  # capset, key, served_at, subjects, room
    for cid in governed:
        caps = capsets.by_id[cid]
        if cid not in capsets.keyed:  # keyless tasks needing a limited capability
            subjects = book.subjects(None, caps)
            if room(subjects) >= 1:
                rows = conn.execute(q.tasks.next_ready, (cid, n)).fetchall()
                groups += [Group([Candidate(r, s, t, 0)], subjects) for r, s, t in rows]
            else:
                retry_at = _earliest(retry_at, _rate_retry(book, usage, subjects, tx.now))
            continue
        found = offset = 0
        size = min(CHUNK, n + 8)  # a first page for the lease's size: most keys have room
        for _ in range(MAX_HEAD_PAGES):
            heads = [
                (key, served_at, book.subjects(key, caps))
                for key, served_at, _ in conn.execute(q.limits.heads, (cid, size, offset)).fetchall()
            ]
            offset += len(heads)
            load([s for *_, subjects in heads for s in subjects])
            for key, served_at, subjects in heads:
                r = room(subjects)
                if r >= 1:
                    keyed.append((cid, key, served_at, subjects, r))
                    found += 1
                else:
                    retry_at = _earliest(retry_at, _rate_retry(book, usage, subjects, tx.now))
                if found >= n:
                    break
            if found >= n or len(heads) < size:
                break
            size = CHUNK
    # Each key's next tasks: enough for its share of the lease, the rest fetched if it needs more.
    share = max(2, math.ceil(n / max(1, len(keyed))) + 1)
    sizes = [int(min(r, n, share)) for *_, r in keyed]
    fetched = _key_tasks(tx, [(c, k, m) for (c, k, *_), m in zip(keyed, sizes, strict=True)])
    choice = Choice([])
    by_ref: dict[int, Group] = {}
    for i, (cid, key, served_at, subjects, _) in enumerate(keyed):
        tasks = fetched.get((cid, key), [])
        if not tasks:
            choice.stale.append((cid, key))
            continue
        g = Group(tasks, subjects, key, served_at, more=len(tasks) == sizes[i], ref=(cid, key, keyed[i][4]))
        by_ref[i] = g
        groups.append(g)

    aging = tx.policy.aging_us

    def fresh() -> Allowance:
        return Allowance(book, usage, tx.now)

    picked = fairness.pick(groups, n, tx.now, aging, fresh)
    while picked.wants is not None:  # a key ran out of the tasks read for it: read all it may take
        g = picked.wants
        cid, key, r = g.ref  # type: ignore[misc]
        more = int(min(r, n))
        g.tasks = _key_tasks(tx, [(cid, key, more)]).get((cid, key), [])
        g.more = False
        picked = fairness.pick(groups, n, tx.now, aging, fresh)
    choice.task_ids = picked.task_ids
    choice.retry_at = _earliest(retry_at, picked.retry_at)
    choice.served = [g.ref[:2] for g in picked.served]  # type: ignore[index]
    if not picked.task_ids:
        return choice
    of_task = {c.task_id: g.subjects for g in groups if g.subjects for c in g.tasks}
    choice.holds = {t: list(of_task[t]) for t in picked.task_ids if t in of_task}
    # The buckets the lease spends from (their tokens as refilled now, less the starts taken).
    spend = fresh()
    for held in choice.holds.values():
        spend.take(held)
    taken = {s for held in choice.holds.values() for s in held}
    choice.spent = [(s, tokens, tx.now) for s, tokens in spend.buckets.items() if s in taken]
    return choice


def _key_tasks(tx: TaskTx, wanted: list[tuple[int, str, int]]) -> dict[tuple[int, str], list[Candidate]]:
    """The next ``m`` ready tasks of each (capset, key, m), best first, in one statement per CHUNK keys."""
    out: dict[tuple[int, str], list[Candidate]] = {}
    for i in range(0, len(wanted), CHUNK):
        chunk = wanted[i : i + CHUNK]
        args = [v for w in chunk for v in w]
        for cid, key, rank, seq, task_id, created_at in tx.conn.execute(tx.q.key_tasks(len(chunk)), args):
            out.setdefault((cid, key), []).append(Candidate(rank, seq, task_id, created_at))
    return out


def _rate_retry(
    book: fairness.LimitBook, usage: dict[str, Usage], subjects: tuple[str, ...], now: int
) -> int | None:
    """When the first subject without room has a start again, if only a rate holds it back."""
    room = Allowance(book, {s: usage[s] for s in subjects if s in usage}, now)
    held = room.blocking(subjects)
    return None if held is None else room.retry_at(held)


def _earliest(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    return a if b is None else min(a, b)


def after_lease(tx: TaskTx, choice: Choice) -> None:
    """What a governed lease writes besides the tasks: the keys' turns (their heads read again),
    the key queues found stale, the buckets spent."""
    lim = tx.q.limits
    aging = tx.policy.aging_us
    if choice.served:
        tx.conn.execute(lim.serve, lim.args_serve(choice.served, tx.now, aging))
    if choice.stale:
        tx.conn.execute(lim.serve, lim.args_serve(choice.stale, 0, aging))
    if choice.spent:
        tx.conn.execute(lim.spend, lim.args_spend(choice.spent, tx.now))


def holds_map(choice: Choice) -> str:
    """The lease statement's map of each governed task's subjects (JSON)."""
    return json.dumps(choice.holds)
