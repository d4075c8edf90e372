"""SQLite's schedule statements (``sql/queries.py``'s ``ScheduleQueries``), beside queries.py to
keep that module's size in hand; part of the same set (``queries.SQLITE.schedules``)."""

from __future__ import annotations

from ..sql.queries import ScheduleQueries

SCHEDULES = ScheduleQueries(
    insert=(
        "INSERT INTO schedules (schedule_id, spec, status, next_fire_at, next_due_at, created_at, updated_at)"
        " VALUES (:schedule_id, :spec, :status, :next_fire_at, :next_due_at, :now, :now)"
    ),
    fetch="SELECT * FROM schedules WHERE schedule_id = ?",
    exists="SELECT 1 FROM schedules WHERE schedule_id = ?",
    # The firing loop's scan and its timer (idx_schedules_due; tests/unit/test_schedule_query_plans.py).
    due=(
        "SELECT schedule_id FROM schedules INDEXED BY idx_schedules_due"
        " WHERE status = 'active' AND next_due_at <= ? ORDER BY next_due_at LIMIT ?"
    ),
    next_due=(
        "SELECT next_due_at FROM schedules INDEXED BY idx_schedules_due"
        " WHERE status = 'active' ORDER BY next_due_at LIMIT 1"
    ),
    claim=(
        "UPDATE schedules SET next_fire_at = ?, next_due_at = ?, status = ?, updated_at = ?"
        " WHERE schedule_id = ? AND status = 'active' AND next_fire_at = ?"
    ),
    record=(
        "UPDATE schedules SET last_fire_at = coalesce(?, last_fire_at),"
        " last_task_id = coalesce(?, last_task_id), fired_count = fired_count + ?,"
        " skipped_count = skipped_count + ?, last_error = coalesce(?, last_error), updated_at = ?"
        " WHERE schedule_id = ?"
    ),
    pause="UPDATE schedules SET status = 'paused', note = ?, updated_at = ? WHERE schedule_id = ?",
    set_note="UPDATE schedules SET note = ?, updated_at = ? WHERE schedule_id = ?",
    resume=(
        "UPDATE schedules SET status = ?, note = '', next_fire_at = ?, next_due_at = ?, updated_at = ?"
        " WHERE schedule_id = ?"
    ),
    delete="DELETE FROM schedules WHERE schedule_id = ?",
    savepoint="SAVEPOINT schedule_run",
    rollback_to="ROLLBACK TO SAVEPOINT schedule_run",
    release="RELEASE SAVEPOINT schedule_run",
)
