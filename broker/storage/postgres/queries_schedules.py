"""PostgreSQL's schedule statements (``sql/queries.py``'s ``ScheduleQueries``), beside queries.py to
keep that module's size in hand; part of the same set (``queries.POSTGRES.schedules``)."""

from __future__ import annotations

from ..sql.queries import ScheduleQueries

SCHEDULES = ScheduleQueries(
    insert=(
        "INSERT INTO schedules (schedule_id, spec, status, next_fire_at, next_due_at, created_at, updated_at)"
        " VALUES (%(schedule_id)s, %(spec)s, %(status)s, %(next_fire_at)s, %(next_due_at)s, %(now)s, %(now)s)"
    ),
    fetch="SELECT * FROM schedules WHERE schedule_id = %s",
    exists="SELECT 1 FROM schedules WHERE schedule_id = %s",
    # The firing loop's scan and its timer (idx_schedules_due; tests/unit/test_schedule_query_plans.py).
    due=(
        "SELECT schedule_id FROM schedules"
        " WHERE status = 'active' AND next_due_at <= %s ORDER BY next_due_at LIMIT %s"
    ),
    next_due=("SELECT next_due_at FROM schedules WHERE status = 'active' ORDER BY next_due_at LIMIT 1"),
    claim=(
        "UPDATE schedules SET next_fire_at = %s, next_due_at = %s, status = %s, updated_at = %s"
        " WHERE schedule_id = %s AND status = 'active' AND next_fire_at = %s"
    ),
    record=(
        "UPDATE schedules SET last_fire_at = coalesce(%s, last_fire_at),"
        " last_task_id = coalesce(%s, last_task_id), fired_count = fired_count + %s,"
        " skipped_count = skipped_count + %s, last_error = coalesce(%s, last_error), updated_at = %s"
        " WHERE schedule_id = %s"
    ),
    pause="UPDATE schedules SET status = 'paused', note = %s, updated_at = %s WHERE schedule_id = %s",
    set_note="UPDATE schedules SET note = %s, updated_at = %s WHERE schedule_id = %s",
    resume=(
        "UPDATE schedules SET status = %s, note = '', next_fire_at = %s, next_due_at = %s, updated_at = %s"
        " WHERE schedule_id = %s"
    ),
    delete="DELETE FROM schedules WHERE schedule_id = %s",
    savepoint="SAVEPOINT schedule_run",
    rollback_to="ROLLBACK TO SAVEPOINT schedule_run",
    release="RELEASE SAVEPOINT schedule_run",
)
