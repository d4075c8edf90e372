"""The pieces of the tasks table's guard rails that read the same in both dialects, generated from
the domain's declarations: the state machine (``domain.task_states``) and what a lease and a
release do to the holder's counts (``domain.capacity``). Each dialect wraps them in its own kind of
trigger (``sqlite/triggers.py``, ``postgres/triggers.py``); its migrations hold what that produces,
and tests/unit/test_triggers.py pins that a migrated schema runs exactly that.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ...domain import capacity, task_states
from ...models.tasks import TaskStatus


def status_list(statuses: Iterable[TaskStatus]) -> str:
    """``('a', 'b')``: the statuses in the state machine's order."""
    chosen = set(statuses)
    return "(" + ", ".join(f"'{s.value}'" for s in TaskStatus if s in chosen) + ")"


def transitions_allowed(
    transitions: Mapping[TaskStatus, Iterable[TaskStatus]] = task_states.TRANSITIONS, indent: str = ""
) -> str:
    """True when ``OLD.status -> NEW.status`` is a transition (one line a status that has any)."""
    terms = [
        f"(OLD.status = '{frm.value}' AND NEW.status IN {status_list(to)})"
        for frm, to in sorted(transitions.items(), key=lambda kv: list(TaskStatus).index(kv[0]))
        if to
    ]
    return f"\n{indent}OR ".join(terms)


def initial_statuses() -> str:
    return status_list(task_states.INITIAL)


def inserted_as() -> str:
    """The refusal of an insert in another status: 'a task is inserted pending, blocked or ready'."""
    names = [s.value for s in TaskStatus if s in task_states.INITIAL]
    return f"a task is inserted {', '.join(names[:-1])} or {names[-1]}"


HOLDING = f"'{capacity.HOLDING.value}'"


def count_changes(steps: Iterable[capacity.Step], greatest: str, least: str, indent: str) -> str:
    """The SET list of ``UPDATE agents`` for ``steps`` (``greatest``/``least``: the dialect's
    two-argument max and min)."""
    out = []
    for step in steps:
        expr = f"{step.column} {'+' if step.by > 0 else '-'} {abs(step.by)}"
        if step.bound is not None:
            expr = f"{greatest if step.by < 0 else least}({expr}, {step.bound})"
        if step.unset:
            expr = f"CASE WHEN {step.column} IS NULL THEN NULL ELSE {expr} END"
        out.append(f"{step.column} = {expr}")
    return f",\n{indent}".join(out)
