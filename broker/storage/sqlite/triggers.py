"""SQLite's triggers over tasks, as generated from the domain's declarations (``sql/triggers.py``):
the state machine and the holder's counts. The migrations hold this text (0003, 0016); the test
(tests/unit/test_triggers.py) compares a migrated file's triggers with it, so that a change of the
rules that is not migrated fails."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ...domain import capacity, task_states
from ...models.tasks import TaskStatus
from ..sql.triggers import HOLDING, count_changes, initial_statuses, inserted_as, transitions_allowed


def transition_trigger(
    transitions: Mapping[TaskStatus, Iterable[TaskStatus]] = task_states.TRANSITIONS,
) -> str:
    return f"""CREATE TRIGGER trg_tasks_transition BEFORE UPDATE OF status ON tasks
WHEN OLD.status != NEW.status AND NOT (
       {transitions_allowed(transitions, indent="    ")})
BEGIN
    SELECT RAISE(ABORT, 'invalid task state transition');
END"""


def insert_trigger() -> str:
    return f"""CREATE TRIGGER trg_tasks_insert BEFORE INSERT ON tasks
WHEN NEW.status NOT IN {initial_statuses()}
BEGIN
    SELECT RAISE(ABORT, '{inserted_as()}');
END"""


def _counts(steps: Iterable[capacity.Step]) -> str:
    return count_changes(steps, "max", "min", indent="        ")


def lease_trigger() -> str:
    return f"""CREATE TRIGGER trg_tasks_lease AFTER UPDATE OF status ON tasks
WHEN NEW.status = {HOLDING} AND OLD.status != {HOLDING}
BEGIN
    UPDATE agents SET
        {_counts(capacity.ON_LEASE)}
    WHERE agent_id = NEW.assigned_agent_id;
END"""


def release_trigger() -> str:
    return f"""CREATE TRIGGER trg_tasks_release AFTER UPDATE OF status ON tasks
WHEN OLD.status = {HOLDING} AND NEW.status != {HOLDING}
BEGIN
    UPDATE agents SET
        {_counts(capacity.ON_RELEASE)}
    WHERE agent_id = OLD.assigned_agent_id;
END"""


def triggers() -> dict[str, str]:
    """Each generated trigger by name."""
    return {
        "trg_tasks_transition": transition_trigger(),
        "trg_tasks_insert": insert_trigger(),
        "trg_tasks_lease": lease_trigger(),
        "trg_tasks_release": release_trigger(),
    }
