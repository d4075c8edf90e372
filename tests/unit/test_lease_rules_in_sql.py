"""The lease checks storage runs set-based (broker/domain/leases.py: ``current_sql`` in the statement
that completes a task, ``lapsed_sql`` in the sweeper's scan) agree with ``leases.refusal``, the
rule as Python runs it for ExtendLease and Fail and to say why a lease is refused: over every
combination of the values they read, on SQLite and on PostgreSQL."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from broker.domain import leases
from broker.models.tasks import LeaseRef, TaskStatus

from .sql_dialects import DIALECTS, Db, scratch

NOW = 100
COLUMNS = (
    "seq INTEGER PRIMARY KEY, status TEXT, assigned_agent_id TEXT, attempt INTEGER, lease_expires_at BIGINT"
)


@pytest.fixture(params=DIALECTS)
def db(request) -> Iterator[Db]:
    yield from scratch(request, "tasks", COLUMNS)


def grid() -> list[dict]:
    """Tasks in every status, held or not, at two attempts, their lease around now (a running task
    always has a holder and a lease expiry: the schema's CHECK)."""
    rows = []
    combos = itertools.product(TaskStatus, ("a", "b", None), (1, 2), (None, 99, 100, 101))
    for status, holder, attempt, expires in combos:
        if status is TaskStatus.RUNNING and (holder is None or expires is None):
            continue
        rows.append(
            {
                "seq": len(rows),
                "status": status.value,
                "assigned_agent_id": holder,
                "attempt": attempt,
                "lease_expires_at": expires,
            }
        )
    return rows


def test_the_current_lease_in_sql_is_the_lease_rule(db):
    rows = grid()
    db.insert(list(rows[0]), rows)
    ref = LeaseRef(task_id="t", agent_id="a", attempt=2)
    expected = {
        r["seq"]
        for r in rows
        if leases.refusal(
            ref, TaskStatus(r["status"]), r["assigned_agent_id"], r["attempt"], r["lease_expires_at"], NOW
        )
        is None
    }
    assert expected  # the grid holds current leases, and others
    assert db.where(leases.current_sql(db.p), "seq", agent="a", attempt=2, now=NOW) == expected


def test_a_lapsed_lease_in_sql_is_the_lease_rule(db):
    """Lapsed: a lease that is refused now only because time passed (its own holder and attempt
    were current when it expired)."""
    rows = grid()
    db.insert(list(rows[0]), rows)
    expected = set()
    for r in rows:
        if r["assigned_agent_id"] is None or r["lease_expires_at"] is None:
            continue
        ref = LeaseRef(task_id="t", agent_id=r["assigned_agent_id"], attempt=r["attempt"])
        held = (TaskStatus(r["status"]), r["assigned_agent_id"], r["attempt"], r["lease_expires_at"])
        if leases.refusal(ref, *held, r["lease_expires_at"]) is None and leases.refusal(ref, *held, NOW):
            expected.add(r["seq"])
    assert expected
    assert db.where(leases.lapsed_sql(db.p), "seq", now=NOW) == expected
