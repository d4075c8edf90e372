"""Rows <-> task values, and capability sets (shared by the tasks_* modules)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ...domain.capacity import covers
from ...domain.fairness import LimitBook
from ...errors import NotFound
from ...models.limits import Limit
from ...models.tasks import Dependency, DepType, Task, TaskStatus, Transition
from .connection import Connection, Row
from .queries import Queries


def subtree_bounds(path: str) -> tuple[str, str]:
    """[low, high) of the paths under ``path`` (which ends with '/'; '0' follows '/')."""
    return path, path[:-1] + "0"


def capset_id_of(caps: tuple[str, ...], keyed: bool = False) -> int:
    """A capability set's id: derived from its content, so a cached id can never
    name another set (ids are not handed out by a rolled-back transaction). Keyed
    tasks (with a concurrency key) have sets of their own, with the same caps."""
    text = json.dumps([list(caps), "keyed"] if keyed else list(caps))
    digest = hashlib.sha256(text.encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1  # 63 bits: a positive SQLite integer


class Capsets:
    """Capability sets known to this process, which of them an agent covers, and the
    concurrency limits in force (``book``).

    Only the writer thread uses it. Sets are never deleted and their id is a
    function of their content, so the cache cannot go stale, only incomplete:
    it is refreshed whenever the table's content changes. The limits are read
    again whenever their epoch changes (every change of them sets a new random
    one, chosen before its job is queued: a rolled-back change cannot leave the
    copy matching an epoch it does not belong to).
    """

    def __init__(self) -> None:
        self.by_id: dict[int, tuple[str, ...]] = {}
        self.keyed: set[int] = set()
        self.book = LimitBook()
        self._count: tuple[int, float] = (0, 0.0)
        self._epoch: object = Capsets  # never an epoch read (None is one: no row)
        self._covers: dict[tuple[str, ...], list[int]] = {}
        self._governed: dict[int, bool] = {}

    def ensure(self, conn: Connection, q: Queries, caps: tuple[str, ...], keyed: bool = False) -> int:
        cid = capset_id_of(caps, keyed)
        conn.execute(q.tasks.insert_capset, (cid, json.dumps(list(caps)), int(keyed)))
        return cid

    def governed(self, cid: int) -> bool:
        """Whether dispatch takes the set's tasks through the limits and the keys' fair share."""
        if cid in self.keyed:
            return True
        if not self.book.by_capability:
            return False
        found = self._governed.get(cid)
        if found is None:
            found = self._governed[cid] = bool(self.book.subjects(None, self.by_id[cid]))
        return found

    def limits(self, conn: Connection, q: Queries) -> LimitBook:
        """The limits in force, read again if they changed since (one small read to know)."""
        row = conn.execute(q.limits.epoch).fetchone()
        self._load_limits(conn, q, None if row is None else row[0])  # no row: as the census reads it
        return self.book

    def _load_limits(self, conn: Connection, q: Queries, epoch: object) -> None:
        if epoch != self._epoch:
            self.book = LimitBook(limit_of(r) for r in conn.execute(q.limits.all))
            self._epoch = epoch
            self._governed.clear()

    def covered_by(self, conn: Connection, q: Queries, agent_caps: tuple[str, ...]) -> list[int]:
        """Ids of the capability sets an agent with ``agent_caps`` is able to run."""
        # count and sum of the ids: any change of the table's content changes this
        # (even a set added after another's insert was rolled back with its batch).
        # (The sum is of the ids modulo a prime: a sum of 63-bit ids would overflow.)
        *count, epoch = conn.execute(q.tasks.capsets_census).fetchone()
        if tuple(count) != self._count:
            rows = conn.execute(q.tasks.capsets).fetchall()
            self.by_id = {r[0]: tuple(json.loads(r[1])) for r in rows}
            self.keyed = {r[0] for r in rows if r[2]}
            self._count = (count[0], count[1])
            self._covers.clear()
            self._governed.clear()
        self._load_limits(conn, q, epoch)
        found = self._covers.get(agent_caps)
        if found is None:
            have = set(agent_caps)
            found = [cid for cid, caps in self.by_id.items() if covers(have, caps)]
            self._covers[agent_caps] = found
        return found


def limit_of(row: Row) -> Limit:
    """The limit of a row of ``concurrency_limits``."""
    return Limit(
        name=row["name"],
        key=row["key_pattern"],
        capability=row["capability"],
        max_running=row["max_running"],
        rate=row["rate"],
        per_us=row["per_us"],
        burst=row["burst"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


_STATUS = {s.value: s for s in TaskStatus}
_DEP = {d.value: d for d in DepType}


def _strings(text: str) -> tuple[str, ...]:
    return () if text == "[]" else tuple(json.loads(text))


def row_to_task(row: Row | dict[str, Any], depends_on: tuple[Dependency, ...] = ()) -> Task:
    """The task of a row of ``tasks``, with its prerequisites (kept in ``task_dependencies``)."""
    return Task(
        task_id=row["task_id"],
        seq=row["seq"],
        title=row["title"],
        task_type=row["task_type"],
        payload=row["payload"],
        content_type=row["content_type"],
        required_capabilities=_strings(row["required_capabilities"]),
        priority=row["priority"],
        deadline=row["deadline"],
        urgency=row["urgency"],
        dispatch_rank=row["dispatch_rank"],
        parent_id=row["parent_id"],
        root_id=row["root_id"],
        level=row["level"],
        path=row["path"],
        depends_on=depends_on,
        max_retries=row["max_retries"],
        backoff_initial_us=row["backoff_initial_us"],
        backoff_multiplier=row["backoff_multiplier"],
        backoff_max_us=row["backoff_max_us"],
        lease_timeout_us=row["lease_timeout_us"],
        session_id=row["session_id"],
        tags=_strings(row["tags"]),
        metadata={} if row["metadata"] == "{}" else json.loads(row["metadata"]),
        labels={} if row["labels"] == "{}" else json.loads(row["labels"]),
        idempotency_key=row["idempotency_key"],
        submitted_by=row["submitted_by"] or "",
        status=_STATUS[row["status"]],
        attempt=row["attempt"],
        assigned_agent_id=row["assigned_agent_id"],
        lease_expires_at=row["lease_expires_at"],
        progress=row["progress"],
        status_note=row["status_note"] or "",
        result=row["result"],
        result_content_type=row["result_content_type"] or "",
        last_error=row["last_error"] or "",
        next_attempt_at=row["next_attempt_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        traceparent=row["traceparent"],
        max_run_us=row["max_run_us"],
        not_before=row["not_before"],
        concurrency_key=row["concurrency_key"],
    )


def prerequisites_of(conn: Connection, q: Queries, task_id: str) -> list[Row]:
    """(prerequisite_id, dep_type, ordinal) of each prerequisite of a task, in the order given."""
    rows: list[Row] = conn.execute(q.tasks.prerequisites_of, (task_id,)).fetchall()
    return rows


def task_of(conn: Connection, q: Queries, row: Row) -> Task:
    """The task of a row, its prerequisites read only when it has some: a task's dependency chain
    is 0 deep (``dep_depth``) exactly when it waits on nothing."""
    if not row["dep_depth"]:
        return row_to_task(row)
    deps = tuple(Dependency(r[0], _DEP[r[1]]) for r in prerequisites_of(conn, q, row["task_id"]))
    return row_to_task(row, deps)


def load_task(conn: Connection, q: Queries, task_id: str) -> Task:
    row = conn.execute(q.tasks.fetch, (task_id,)).fetchone()
    if row is None:
        raise NotFound(f"task {task_id!r} not found")
    return task_of(conn, q, row)


def load_tasks(conn: Connection, q: Queries, rows: list[Row]) -> list[Task]:
    return [task_of(conn, q, r) for r in rows]


def row_to_transition(row: Row) -> Transition:
    return Transition(
        task_id=row["task_id"],
        from_status=TaskStatus(row["from_status"]) if row["from_status"] else None,
        to_status=TaskStatus(row["to_status"]),
        reason=row["reason"],
        actor=row["actor"],
        at=row["at"],
        attempt=row["attempt"],
    )
