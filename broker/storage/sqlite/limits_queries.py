"""SQLite's statements for concurrency keys and limits (``sql/queries.py``'s ``LimitQueries``):
lists as one JSON value (``json_each``), the standing of a key's head as ``domain.fairness``
writes it, and ``INDEXED BY`` on the dispatch statements (tests/unit/test_task_query_plans.py)."""

from __future__ import annotations

import json
from typing import Any

from ...domain.fairness import standing_sql
from ..sql.queries import LimitQueries

# One key's best leasable task in its capability set (idx_tasks_keyed), from a key_queues row.
_HEAD = (
    " FROM tasks INDEXED BY idx_tasks_keyed WHERE capset_id = key_queues.capset_id"
    " AND concurrency_key = key_queues.concurrency_key AND status = 'ready' AND in_backoff = 0"
    " AND concurrency_key IS NOT NULL ORDER BY dispatch_rank DESC, seq LIMIT 1"
)
_SERVED = "max(key_queues.served_at, :served)"
_LIMIT_COLUMNS = "name, key_pattern, capability, max_running, rate, per_us, burst, created_at, updated_at"


def _enqueue(rows: list[tuple[int, str, float, int]], aging_us: float) -> dict[str, Any]:
    return {"rows": json.dumps(rows), "aging": float(aging_us)}


def _serve(pairs: list[tuple[int, str]], served: int, aging_us: float) -> dict[str, Any]:
    return {"pairs": json.dumps(pairs), "served": served, "aging": float(aging_us)}


def _spend(rows: list[tuple[str, float, int]], now: int) -> dict[str, Any]:
    return {"rows": json.dumps(rows), "now": now}


LIMITS = LimitQueries(
    pack=json.dumps,
    args_enqueue=_enqueue,
    args_serve=_serve,
    args_spend=_spend,
    heads=(
        "SELECT concurrency_key, served_at, standing FROM key_queues INDEXED BY idx_key_queues_standing"
        " WHERE capset_id = ? AND standing IS NOT NULL ORDER BY standing DESC, served_at LIMIT ? OFFSET ?"
    ),
    key_tasks=(
        "SELECT * FROM (SELECT capset_id, concurrency_key, dispatch_rank, seq, task_id, created_at"
        " FROM tasks INDEXED BY idx_tasks_keyed"
        " WHERE capset_id = ? AND concurrency_key = ? AND status = 'ready' AND in_backoff = 0"
        " AND concurrency_key IS NOT NULL ORDER BY dispatch_rank DESC, seq LIMIT ?)"
    ),
    lease=(
        "UPDATE tasks SET status = 'running', assigned_agent_id = ?, attempt = attempt + 1,"
        " lease_expires_at = ? + lease_timeout_us, started_at = ?, updated_at = ?, next_attempt_at = NULL,"
        " run_deadline = ? + max_run_us, progress = 0, status_note = NULL,"
        """ holds = json_extract(?, '$."' || task_id || '"')"""
        " WHERE task_id IN ({}) AND status = 'ready' RETURNING *"
    ),
    enqueue=(
        "INSERT INTO key_queues (capset_id, concurrency_key, head_rank, head_created, standing)"
        " SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'),"
        " json_extract(value, '$[3]'), json_extract(value, '$[2]') FROM json_each(:rows) WHERE true"
        " ON CONFLICT (capset_id, concurrency_key) DO UPDATE SET"
        " head_rank = excluded.head_rank, head_created = excluded.head_created,"
        " standing = "
        + standing_sql("excluded.head_rank", "excluded.head_created", "key_queues.served_at", ":aging", "max")
        + " WHERE key_queues.head_rank IS NULL OR excluded.head_rank > key_queues.head_rank"
    ),
    # (One look-up of the head for its three columns; none found: all three NULL.)
    serve=(
        f"UPDATE key_queues SET served_at = {_SERVED}, (head_rank, head_created, standing) ="
        " (SELECT dispatch_rank, created_at,"
        f" {standing_sql('dispatch_rank', 'created_at', _SERVED, ':aging', 'max')}{_HEAD})"
        " WHERE (capset_id, concurrency_key) IN"
        " (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(:pairs))"
    ),
    usage=(
        "SELECT subject, running, tokens, refilled_at FROM limit_usage"
        " WHERE subject IN (SELECT value FROM json_each(?))"
    ),
    spend=(
        "INSERT INTO limit_usage (subject, tokens, refilled_at, updated_at)"
        " SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'), :now"
        " FROM json_each(:rows) WHERE true"
        " ON CONFLICT (subject) DO UPDATE SET tokens = excluded.tokens, refilled_at = excluded.refilled_at,"
        " updated_at = excluded.updated_at"
    ),
    epoch="SELECT epoch FROM concurrency_epoch",
    set_epoch=(
        "INSERT INTO concurrency_epoch (id, epoch) VALUES (1, ?)"
        " ON CONFLICT (id) DO UPDATE SET epoch = excluded.epoch"
    ),
    all=f"SELECT {_LIMIT_COLUMNS} FROM concurrency_limits ORDER BY name",
    get=f"SELECT {_LIMIT_COLUMNS} FROM concurrency_limits WHERE name = ?",
    upsert=(
        f"INSERT INTO concurrency_limits ({_LIMIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (name) DO UPDATE SET key_pattern = excluded.key_pattern,"
        " capability = excluded.capability, max_running = excluded.max_running, rate = excluded.rate,"
        " per_us = excluded.per_us, burst = excluded.burst, updated_at = excluded.updated_at"
        f" RETURNING {_LIMIT_COLUMNS}"
    ),
    delete="DELETE FROM concurrency_limits WHERE name = ?",
    key_running=(
        "SELECT substr(subject, 5), running FROM limit_usage"
        " WHERE running > 0 AND substr(subject, 1, :n) = :prefix ORDER BY running DESC, subject LIMIT :lim"
    ),
    key_waiting=(
        "SELECT concurrency_key, count(*) FROM tasks INDEXED BY idx_tasks_keyed"
        " WHERE status = 'ready' AND in_backoff = 0 AND concurrency_key IS NOT NULL"
        " AND substr(concurrency_key, 1, :n) = :prefix"
        " GROUP BY concurrency_key ORDER BY count(*) DESC, concurrency_key LIMIT :lim"
    ),
    waiting_of=(
        "SELECT concurrency_key, count(*) FROM tasks INDEXED BY idx_tasks_keyed"
        " WHERE status = 'ready' AND in_backoff = 0 AND concurrency_key IS NOT NULL"
        " AND concurrency_key IN (SELECT value FROM json_each(?)) GROUP BY concurrency_key"
    ),
    running_total="SELECT coalesce(sum(running), 0) FROM limit_usage WHERE substr(subject, 1, 4) = 'key:'",
    waiting_total=(
        "SELECT count(*) FROM tasks INDEXED BY idx_tasks_keyed"
        " WHERE status = 'ready' AND in_backoff = 0 AND concurrency_key IS NOT NULL"
    ),
    purge_queues="DELETE FROM key_queues WHERE standing IS NULL AND served_at < ?",
    purge_usage="DELETE FROM limit_usage WHERE running = 0 AND updated_at < ?",
)
