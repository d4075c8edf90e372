"""The database enforces the task state machine (trg_tasks_transition) exactly as
broker.domain.task_states.TRANSITIONS describes it, and running tasks keep their holder."""

from __future__ import annotations

import sqlite3

import pytest

from broker.domain.task_states import TRANSITIONS
from broker.models.tasks import TaskStatus
from broker.storage.sqlite.migrate import migrate

FINISHED = ("completed", "failed", "cancelled")


@pytest.fixture
def conn(tmp_path):
    db = tmp_path / "sm.db"
    migrate(str(db))
    c = sqlite3.connect(db)  # foreign keys off: rows in any state, no agents needed
    c.execute("DROP TRIGGER trg_tasks_insert")
    yield c
    c.close()


def put(conn, task_id: str, status: str) -> None:
    running = status == "running"
    conn.execute(
        "INSERT INTO tasks (task_id, title, capset_id, dispatch_rank, root_id, path, lease_timeout_us,"
        " status, assigned_agent_id, lease_expires_at, finished_at, created_at, updated_at)"
        " VALUES (?, 't', 0, 0, ?, ?, 1, ?, ?, ?, ?, 0, 0)",
        (
            task_id,
            task_id,
            f"/{task_id}/",
            status,
            "a" if running else None,
            1 if running else None,
            1 if status in FINISHED else None,
        ),
    )


@pytest.mark.parametrize("frm", list(TaskStatus))
@pytest.mark.parametrize("to", list(TaskStatus))
def test_every_edge_is_allowed_or_refused_as_the_model_says(conn, frm, to):
    if frm == to:
        return
    put(conn, "t", frm.value)
    extra = {
        "running": ", assigned_agent_id = 'a', lease_expires_at = 1",
        "completed": ", finished_at = 1",
        "failed": ", finished_at = 1",
        "cancelled": ", finished_at = 1",
    }.get(to.value, "")
    update = f"UPDATE tasks SET status = ?{extra} WHERE task_id = 't'"
    if to in TRANSITIONS[frm]:
        conn.execute(update, (to.value,))
    else:
        with pytest.raises(sqlite3.IntegrityError, match="invalid task state transition"):
            conn.execute(update, (to.value,))


def test_a_running_task_cannot_change_holder_or_be_deleted(conn):
    put(conn, "t", "running")
    with pytest.raises(sqlite3.IntegrityError, match="cannot change holder"):
        conn.execute("UPDATE tasks SET assigned_agent_id = 'b' WHERE task_id = 't'")
    with pytest.raises(sqlite3.IntegrityError, match="cannot be deleted"):
        conn.execute("DELETE FROM tasks WHERE task_id = 't'")
