"""PostgreSQL's trigger functions over tasks, as generated from the domain's declarations
(``sql/triggers.py``): the state machine (with the holder that a running task keeps) and the
holder's counts. The migrations hold this text (0001, 0010); the test (tests/unit/test_triggers.py)
compares a migrated database's functions with it, so that a change of the rules that is not
migrated fails."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ...domain import capacity, task_states
from ...models.tasks import TaskStatus
from ..sql.triggers import HOLDING, count_changes, initial_statuses, inserted_as, transitions_allowed


def transition_function(
    transitions: Mapping[TaskStatus, Iterable[TaskStatus]] = task_states.TRANSITIONS,
) -> str:
    """The body of ``a2a_task_transition()`` (BEFORE INSERT and BEFORE UPDATE on tasks)."""
    return f"""
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.status NOT IN {initial_statuses()} THEN
            RAISE EXCEPTION '{inserted_as()}' USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END IF;
    IF OLD.status != NEW.status AND NOT (
           {transitions_allowed(transitions, indent="        ")}) THEN
        RAISE EXCEPTION 'invalid task state transition' USING ERRCODE = 'check_violation';
    END IF;
    IF OLD.status = {HOLDING} AND NEW.status = {HOLDING}
       AND NEW.assigned_agent_id IS DISTINCT FROM OLD.assigned_agent_id THEN
        RAISE EXCEPTION 'a running task cannot change holder' USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END """


def capacity_function() -> str:
    """The body of ``a2a_task_capacity()`` (AFTER UPDATE OF status on tasks)."""
    indent = "            "
    return f"""
BEGIN
    IF NEW.status = {HOLDING} AND OLD.status != {HOLDING} THEN
        UPDATE agents SET
            {count_changes(capacity.ON_LEASE, "greatest", "least", indent)}
        WHERE agent_id = NEW.assigned_agent_id;
    ELSIF OLD.status = {HOLDING} AND NEW.status != {HOLDING} THEN
        UPDATE agents SET
            {count_changes(capacity.ON_RELEASE, "greatest", "least", indent)}
        WHERE agent_id = OLD.assigned_agent_id;
    END IF;
    RETURN NULL;
END """


def functions() -> dict[str, str]:
    """Each generated function's body by name."""
    return {"a2a_task_transition": transition_function(), "a2a_task_capacity": capacity_function()}
