"""PostgreSQL's statements for concurrency keys and limits (``sql/queries.py``'s
``LimitQueries``): lists as arrays (``unnest``, ``= ANY``), the standing of a key's head as
``domain.fairness`` writes it, and a key's head found with ``LATERAL``."""

from __future__ import annotations

from typing import Any

from ...domain.fairness import standing_sql
from ..sql.queries import LimitQueries

_SERVED = "GREATEST(q.served_at, %(served)s)"
_LIMIT_COLUMNS = "name, key_pattern, capability, max_running, rate, per_us, burst, created_at, updated_at"


def _pack(values: list[Any]) -> list[Any]:
    return values


def _enqueue(rows: list[tuple[int, str, float, int]], aging_us: float) -> dict[str, Any]:
    return {
        "c": [r[0] for r in rows],
        "k": [r[1] for r in rows],
        "r": [r[2] for r in rows],
        "cr": [r[3] for r in rows],
        "aging": float(aging_us),
    }


def _serve(pairs: list[tuple[int, str]], served: int, aging_us: float) -> dict[str, Any]:
    c, k = [p[0] for p in pairs], [p[1] for p in pairs]
    return {"c": c, "k": k, "served": served, "aging": float(aging_us)}


def _spend(rows: list[tuple[str, float, int]], now: int) -> dict[str, Any]:
    return {"s": [r[0] for r in rows], "t": [r[1] for r in rows], "a": [r[2] for r in rows], "now": now}


LIMITS = LimitQueries(
    pack=_pack,
    args_enqueue=_enqueue,
    args_serve=_serve,
    args_spend=_spend,
    heads=(
        "SELECT concurrency_key, served_at, standing FROM key_queues"
        " WHERE capset_id = %s AND standing IS NOT NULL ORDER BY standing DESC, served_at LIMIT %s OFFSET %s"
    ),
    key_tasks=(
        "(SELECT capset_id, concurrency_key, dispatch_rank, seq, task_id, created_at FROM tasks"
        " WHERE capset_id = %s AND concurrency_key = %s AND status = 'ready' AND in_backoff = 0"
        " AND concurrency_key IS NOT NULL ORDER BY dispatch_rank DESC, seq LIMIT %s)"
    ),
    lease=(
        "UPDATE tasks SET status = 'running', assigned_agent_id = %s, attempt = attempt + 1,"
        " lease_expires_at = %s + lease_timeout_us, started_at = %s, updated_at = %s, next_attempt_at = NULL,"
        " run_deadline = %s + max_run_us, progress = 0, status_note = NULL,"
        " holds = (%s::jsonb -> task_id)::text"
        " WHERE task_id IN ({}) AND status = 'ready' RETURNING *"
    ),
    enqueue=(
        "INSERT INTO key_queues (capset_id, concurrency_key, head_rank, head_created, standing)"
        " SELECT c, k, r, cr, r"
        " FROM unnest(%(c)s::bigint[], %(k)s::text[], %(r)s::float8[], %(cr)s::bigint[]) AS v(c, k, r, cr)"
        " ON CONFLICT (capset_id, concurrency_key) DO UPDATE SET"
        " head_rank = excluded.head_rank, head_created = excluded.head_created,"
        " standing = "
        + standing_sql(
            "excluded.head_rank", "excluded.head_created", "key_queues.served_at", "%(aging)s", "GREATEST"
        )
        + " WHERE key_queues.head_rank IS NULL OR excluded.head_rank > key_queues.head_rank"
    ),
    serve=(
        f"UPDATE key_queues q SET served_at = {_SERVED}, head_rank = h.dispatch_rank,"
        " head_created = h.created_at,"
        f" standing = {standing_sql('h.dispatch_rank', 'h.created_at', _SERVED, '%(aging)s', 'GREATEST')}"
        " FROM unnest(%(c)s::bigint[], %(k)s::text[]) AS v(c, k)"
        " LEFT JOIN LATERAL (SELECT dispatch_rank, created_at FROM tasks t"
        " WHERE t.capset_id = v.c AND t.concurrency_key = v.k AND t.status = 'ready' AND t.in_backoff = 0"
        " AND t.concurrency_key IS NOT NULL ORDER BY t.dispatch_rank DESC, t.seq LIMIT 1) h ON true"
        " WHERE q.capset_id = v.c AND q.concurrency_key = v.k"
    ),
    usage="SELECT subject, running, tokens, refilled_at FROM limit_usage WHERE subject = ANY(%s)",
    spend=(
        "INSERT INTO limit_usage (subject, tokens, refilled_at, updated_at)"
        " SELECT s, t, a, %(now)s FROM unnest(%(s)s::text[], %(t)s::float8[], %(a)s::bigint[]) AS v(s, t, a)"
        " ON CONFLICT (subject) DO UPDATE SET tokens = excluded.tokens, refilled_at = excluded.refilled_at,"
        " updated_at = excluded.updated_at"
    ),
    epoch="SELECT epoch FROM concurrency_epoch",
    set_epoch=(
        "INSERT INTO concurrency_epoch (id, epoch) VALUES (1, %s)"
        " ON CONFLICT (id) DO UPDATE SET epoch = excluded.epoch"
    ),
    all=f"SELECT {_LIMIT_COLUMNS} FROM concurrency_limits ORDER BY name",
    get=f"SELECT {_LIMIT_COLUMNS} FROM concurrency_limits WHERE name = %s",
    upsert=(
        f"INSERT INTO concurrency_limits ({_LIMIT_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (name) DO UPDATE SET key_pattern = excluded.key_pattern,"
        " capability = excluded.capability, max_running = excluded.max_running, rate = excluded.rate,"
        " per_us = excluded.per_us, burst = excluded.burst, updated_at = excluded.updated_at"
        f" RETURNING {_LIMIT_COLUMNS}"
    ),
    delete="DELETE FROM concurrency_limits WHERE name = %s",
    key_running=(
        "SELECT substr(subject, 5), running FROM limit_usage"
        " WHERE running > 0 AND left(subject, %(n)s) = %(prefix)s"
        " ORDER BY running DESC, subject LIMIT %(lim)s"
    ),
    key_waiting=(
        "SELECT concurrency_key, count(*) FROM tasks"
        " WHERE status = 'ready' AND in_backoff = 0 AND concurrency_key IS NOT NULL"
        " AND left(concurrency_key, %(n)s) = %(prefix)s"
        " GROUP BY concurrency_key ORDER BY count(*) DESC, concurrency_key LIMIT %(lim)s"
    ),
    waiting_of=(
        "SELECT concurrency_key, count(*) FROM tasks"
        " WHERE status = 'ready' AND in_backoff = 0 AND concurrency_key = ANY(%s) GROUP BY concurrency_key"
    ),
    running_total="SELECT coalesce(sum(running), 0) FROM limit_usage WHERE left(subject, 4) = 'key:'",
    waiting_total=(
        "SELECT count(*) FROM tasks WHERE status = 'ready' AND in_backoff = 0 AND concurrency_key IS NOT NULL"
    ),
    purge_queues="DELETE FROM key_queues WHERE standing IS NULL AND served_at < %s",
    purge_usage="DELETE FROM limit_usage WHERE running = 0 AND updated_at < %s",
)
