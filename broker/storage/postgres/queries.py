"""PostgreSQL's statements, by name (``sql/queries.py`` says what each set holds): ``%s`` and
``%(name)s`` parameters (a literal ``%`` written ``%%``), id lists as arrays (``= ANY(%s)``), and
``FOR UPDATE SKIP LOCKED`` where brokers claiming the same rows should take different ones rather
than wait or abort. The planner keeps statistics: no index is named (the plan test,
tests/integration/test_postgres_plans.py, checks that each hot statement can use its index).

The message statements are composed from the rules' fragments (``broker.domain.messages``), given
PostgreSQL's style of named parameter (``named``).
"""

from __future__ import annotations

from typing import Any

from ...domain import leases
from ...domain import messages as rules
from ..sql.queries import (
    A2A_CONFIG,
    A2A_ENTRY,
    A2A_EVENT,
    FINISHED,
    MESSAGE_COLUMNS,
    MESSAGE_INSERT_COLUMNS,
    SESSION_COLUMNS,
    TASK_INSERT_COLUMNS,
    A2AQueries,
    AgentQueries,
    CensusQueries,
    MessageQueries,
    Queries,
    SessionQueries,
    TaskQueries,
    TokenQueries,
)
from . import wire
from .limits_queries import LIMITS
from .params import named
from .queries_schedules import SCHEDULES
from .subject_queries import SUBJECTS


def release(where: str) -> str:
    """Hand deliveries back (``rules.release_sql``, set-based) where ``where`` holds."""
    return (
        f"UPDATE a2a_messages SET {rules.release_sql(named)} WHERE status = 'delivered' AND {where}"
        " RETURNING message_id, attempt + %(refund)s, status, recipient_id, target_capability, deliver_after"
    )


def _pack_held(held: list[tuple[str, int]]) -> dict[str, Any]:
    return {"held_ids": [h[0] for h in held], "held_attempts": [h[1] for h in held]}


AGENTS = AgentQueries(
    fetch="SELECT * FROM agents WHERE agent_id = %s",
    register="""
        INSERT INTO agents (agent_id, name, agent_type, capabilities, max_concurrent_tasks,
            endpoint, labels, metadata, status, registered_at, updated_at, last_heartbeat_at,
            exposure, capability_descriptions)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (agent_id) DO UPDATE SET
            name = excluded.name, agent_type = excluded.agent_type,
            capabilities = excluded.capabilities,
            max_concurrent_tasks = excluded.max_concurrent_tasks,
            endpoint = excluded.endpoint, labels = excluded.labels, metadata = excluded.metadata,
            status = excluded.status, updated_at = excluded.updated_at,
            last_heartbeat_at = excluded.last_heartbeat_at,
            exposure = excluded.exposure,
            capability_descriptions = excluded.capability_descriptions,
            reported_free_capacity = NULL
        """,
    delete_capabilities="DELETE FROM agent_capabilities WHERE agent_id = %s",
    insert_capability="INSERT INTO agent_capabilities (capability, agent_id) VALUES (%s, %s)",
    heartbeat=(
        "UPDATE agents SET status = %s, last_heartbeat_at = %s, updated_at = %s,"
        " reported_free_capacity = %s WHERE agent_id = %s"
    ),
    deregister=(
        "UPDATE agents SET status = 'deregistered', updated_at = %s, reported_free_capacity = NULL"
        " WHERE agent_id = %s"
    ),
    # The tasks an agent finished (it held them last) since a time, newest first: its record's
    # input. idx_tasks_agent (assigned_agent_id, status, seq) narrows to its finished tasks.
    outcomes=(
        "SELECT status, finished_at - started_at FROM tasks"
        " WHERE assigned_agent_id = %s AND status IN ('completed', 'failed') AND finished_at >= %s"
        " AND started_at IS NOT NULL ORDER BY finished_at DESC LIMIT %s"
    ),
    # The sweeper's liveness scan (idx_agents_liveness: it reads only the overdue agents).
    # Offline agents silent since before a time (idx_agents_status: the offline ones, by id).
    offline_since=(
        "SELECT * FROM agents WHERE status = 'offline' AND last_heartbeat_at < %s ORDER BY agent_id LIMIT %s"
    ),
    liveness_scan=(
        "SELECT * FROM agents WHERE status IN ('available', 'busy', 'maintenance') AND last_heartbeat_at < %s"
    ),
    set_heartbeat="UPDATE agents SET last_heartbeat_at = %s WHERE agent_id = %s",
    set_offline="UPDATE agents SET status = 'offline', updated_at = %s WHERE agent_id = %s",
)

TASKS = TaskQueries(
    fetch="SELECT * FROM tasks WHERE task_id = %s",
    # -- dispatch and the sweeper (each served by its index: tests/integration/test_postgres_plans.py).
    # The next ready tasks of one capability set, best first: an equality on capset_id then the
    # index order, no sort.
    next_ready=(
        "SELECT dispatch_rank, seq, task_id FROM tasks"
        " WHERE capset_id = %s AND status = 'ready' AND in_backoff = 0 AND concurrency_key IS NULL"
        " ORDER BY dispatch_rank DESC, seq LIMIT %s"
    ),
    expired_leases=(
        f"SELECT * FROM tasks WHERE {leases.lapsed_sql(named)} ORDER BY lease_expires_at LIMIT %(lim)s"
    ),
    timed_out=(
        "SELECT * FROM tasks"
        " WHERE status = 'running' AND run_deadline IS NOT NULL AND run_deadline <= %s"
        " ORDER BY run_deadline LIMIT %s"
    ),
    due_backoff=(
        "SELECT task_id, capset_id FROM tasks"
        " WHERE status = 'ready' AND in_backoff = 1 AND next_attempt_at <= %s"
    ),
    end_backoff=(
        "UPDATE tasks SET in_backoff = 0, updated_at = %s WHERE task_id = %s"
        " RETURNING required_capabilities, capset_id, concurrency_key, dispatch_rank, created_at"
    ),
    held_due=(
        "SELECT * FROM tasks WHERE status = 'pending' AND not_before <= %s ORDER BY not_before LIMIT %s"
    ),
    # A departed agent's running tasks.
    holder_running=("SELECT * FROM tasks WHERE assigned_agent_id = %s AND status = 'running' ORDER BY seq"),
    # Ready tasks inside the deadline-urgency horizon.
    urgency_window=(
        "SELECT task_id, priority, deadline, urgency, created_at, capset_id, concurrency_key FROM tasks"
        " WHERE status = 'ready' AND deadline IS NOT NULL AND deadline < %s"
    ),
    set_urgency="UPDATE tasks SET urgency = %s, dispatch_rank = %s WHERE task_id = %s",
    # -- capability sets
    insert_capset=(
        "INSERT INTO capability_sets (capset_id, caps, keyed) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING"
    ),
    # count and sum of the ids: any change of the table's content changes this (the sum is of the
    # ids modulo a prime: a sum of 63-bit ids would overflow).
    # (and the limits' epoch: they changed when it did)
    capsets_census=(
        "SELECT count(*), coalesce(sum(capset_id %% 1000003), 0), (SELECT epoch FROM concurrency_epoch)"
        " FROM capability_sets"
    ),
    capsets="SELECT capset_id, caps, keyed FROM capability_sets",
    # -- leases
    lease=(
        "UPDATE tasks SET status = 'running', assigned_agent_id = %s, attempt = attempt + 1,"
        " lease_expires_at = %s + lease_timeout_us, started_at = %s, updated_at = %s, next_attempt_at = NULL,"
        " run_deadline = %s + max_run_us, progress = 0, status_note = NULL, holds = NULL"
        " WHERE task_id IN ({}) AND status = 'ready' RETURNING *"
    ),
    lease_agent=(
        "SELECT status, capabilities, max_concurrent_tasks, current_task_count, reported_free_capacity,"
        " exposure, agent_type FROM agents WHERE agent_id = %s"
    ),
    # One statement checks the lease (``domain.leases.current_sql``) and completes; a refusal
    # asks ``leases.refusal`` why.
    complete=(
        "UPDATE tasks SET status = 'completed', lease_expires_at = NULL, result = %(result)s,"
        " result_content_type = %(ctype)s, progress = 100, finished_at = %(now)s, updated_at = %(now)s"
        f" WHERE task_id = %(task)s AND {leases.current_sql(named)} RETURNING *"
    ),
    return_lease=(
        "UPDATE tasks SET status = 'ready', assigned_agent_id = NULL, lease_expires_at = NULL,"
        " attempt = attempt - 1, started_at = NULL, updated_at = %s WHERE task_id = %s"
    ),
    extend=(
        "UPDATE tasks SET lease_expires_at = %s, progress = coalesce(%s, progress),"
        " status_note = coalesce(%s, status_note), updated_at = %s WHERE task_id = %s"
    ),
    last_failure=(
        "SELECT actor, error, retryable FROM task_state_history WHERE task_id = %s AND attempt = %s"
        " AND from_status = 'running' ORDER BY id DESC LIMIT 1"
    ),
    purge=(
        "DELETE FROM tasks WHERE task_id IN (SELECT t.task_id FROM tasks t"
        f" WHERE t.status IN {FINISHED} AND t.finished_at < %s"
        " AND NOT EXISTS (SELECT 1 FROM tasks c WHERE c.parent_id = t.task_id) LIMIT %s)"
    ),
    # -- state changes (tasks_tx.py)
    make_ready=(
        "UPDATE tasks SET status = 'ready', urgency = %s, dispatch_rank = %s, updated_at = %s"
        " WHERE task_id = %s"
    ),
    retry=(
        "UPDATE tasks SET status = 'ready', assigned_agent_id = NULL, lease_expires_at = NULL,"
        " last_error = %s, next_attempt_at = %s, in_backoff = %s, urgency = %s, dispatch_rank = %s,"
        " updated_at = %s WHERE task_id = %s"
    ),
    fail=(
        "UPDATE tasks SET status = 'failed', lease_expires_at = NULL, last_error = %s,"
        " next_attempt_at = NULL, finished_at = %s, updated_at = %s WHERE task_id = %s"
    ),
    depart=(
        "UPDATE tasks SET status = 'ready', assigned_agent_id = NULL, lease_expires_at = NULL,"
        " last_error = %s, next_attempt_at = NULL, in_backoff = 0, urgency = %s, dispatch_rank = %s,"
        " departures = departures + 1, updated_at = %s WHERE task_id = %s"
    ),
    cancel=(
        "UPDATE tasks SET status = 'cancelled', lease_expires_at = NULL, last_error = %s,"
        " next_attempt_at = NULL, in_backoff = 0, finished_at = %s, updated_at = %s WHERE task_id = %s"
    ),
    unfinished_below=(
        "SELECT * FROM tasks WHERE path >= %s AND path < %s AND path != %s"
        f" AND status NOT IN {FINISHED} ORDER BY path"
    ),
    # -- dependencies
    resolve_edges=(
        "UPDATE task_dependencies SET resolved_at = %s WHERE prerequisite_id = %s AND resolved_at IS NULL"
    ),
    # Dependents of a task (idx_task_dependencies_prerequisite).
    dependents="SELECT dependent_id, dep_type FROM task_dependencies WHERE prerequisite_id = %s",
    # Unfinished prerequisites of a task (primary key of task_dependencies, then tasks by id).
    unfinished_prereqs=(
        "SELECT count(*) FROM task_dependencies d JOIN tasks p ON p.task_id = d.prerequisite_id"
        f" WHERE d.dependent_id = %s AND p.status NOT IN {FINISHED}"
    ),
    prereq=("SELECT status, dep_depth FROM tasks WHERE task_id = %s"),
    dep_depth="SELECT dep_depth FROM tasks WHERE task_id = %s",
    set_dep_depth="UPDATE tasks SET dep_depth = %s WHERE task_id = %s",
    insert_edge=(
        "INSERT INTO task_dependencies (dependent_id, prerequisite_id, dep_type, resolved_at, ordinal)"
        " VALUES (%s, %s, %s, %s, %s)"
    ),
    delete_edge="DELETE FROM task_dependencies WHERE dependent_id = %s AND prerequisite_id = %s",
    mark_has_dependents="UPDATE tasks SET has_dependents = 1 WHERE task_id = %s AND has_dependents = 0",
    touch="UPDATE tasks SET updated_at = %s WHERE task_id = %s",
    prerequisites_of=(
        "SELECT prerequisite_id, dep_type, ordinal FROM task_dependencies WHERE dependent_id = %s"
        " ORDER BY ordinal"
    ),
    deepest_prereq=(
        "SELECT max(p.dep_depth) FROM task_dependencies d JOIN tasks p ON p.task_id = d.prerequisite_id"
        " WHERE d.dependent_id = %s"
    ),
    set_status="UPDATE tasks SET status = %s WHERE task_id = %s",
    # -- submission
    by_idempotency_key=(
        "SELECT task_id, idempotency_fingerprint, parent_id FROM tasks WHERE idempotency_key = %s"
    ),
    parent="SELECT root_id, level, path, session_id FROM tasks WHERE task_id = %s",
    insert=(
        f"INSERT INTO tasks ({TASK_INSERT_COLUMNS}) VALUES ("
        + ", ".join(f"%({c.strip()})s" for c in TASK_INSERT_COLUMNS.split(","))
        + ") RETURNING seq"
    ),
    insert_tag="INSERT INTO task_tags (tag, seq) VALUES (%s, %s)",
    insert_label="INSERT INTO task_labels (label, seq) VALUES (%s, %s)",
    insert_capability="INSERT INTO task_capabilities (capability, seq) VALUES (%s, %s)",
    # -- reads
    # A subtree by materialized path (idx_tasks_path): every path starting with the prefix.
    subtree="SELECT * FROM tasks WHERE path >= %s AND path < %s ORDER BY path LIMIT %s",
    # GetTree: the whole subtree's counts, then a page of it after a path (optionally depth-limited).
    subtree_counts=(
        "SELECT status, count(*), sum(progress) FROM tasks WHERE path >= %s AND path < %s GROUP BY status"
    ),
    subtree_page="SELECT * FROM tasks WHERE path >= %s AND path < %s AND path > %s ORDER BY path LIMIT %s",
    subtree_page_depth=(
        "SELECT * FROM tasks WHERE path >= %s AND path < %s AND path > %s AND level <= %s"
        " ORDER BY path LIMIT %s"
    ),
    exists="SELECT 1 FROM tasks WHERE task_id = %s",
    path="SELECT path FROM tasks WHERE task_id = %s",
    history="SELECT * FROM task_state_history WHERE task_id = %s ORDER BY id",
    last_transition="SELECT * FROM task_state_history WHERE task_id = %s ORDER BY id DESC LIMIT 1",
    of_session="SELECT * FROM tasks WHERE session_id = %s ORDER BY seq LIMIT %s",
    prerequisites=(
        "SELECT d.prerequisite_id, d.dep_type, d.resolved_at, p.status, p.title FROM task_dependencies d"
        " JOIN tasks p ON p.task_id = d.prerequisite_id WHERE d.dependent_id = %s ORDER BY p.seq"
    ),
    dependent_edges=(
        "SELECT d.dependent_id, d.dep_type, d.resolved_at, t.status, t.title FROM task_dependencies d"
        " JOIN tasks t ON t.task_id = d.dependent_id WHERE d.prerequisite_id = %s ORDER BY t.seq"
    ),
)

SESSIONS = SessionQueries(
    fetch=f"SELECT {SESSION_COLUMNS} FROM orchestration_sessions WHERE session_id = %s",
    exists="SELECT 1 FROM orchestration_sessions WHERE session_id = %s",
    insert=(
        "INSERT INTO orchestration_sessions (session_id, name, parent_session_id, created_by, context,"
        " labels, status, deadline, max_tasks, created_at, updated_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, 'active', %s, %s, %s, %s)"
    ),
    insert_implicit=(
        "INSERT INTO orchestration_sessions (session_id, created_by, created_at, updated_at)"
        " VALUES (%s, %s, %s, %s)"
    ),
    admission="SELECT status, max_tasks FROM orchestration_sessions WHERE session_id = %s",
    task_total="SELECT count(*) FROM tasks WHERE session_id = %s",
    task_counts="SELECT status, count(*) FROM tasks WHERE session_id = %s GROUP BY status",
    # Whether a session has an unfinished task, and a task failed for good
    # (idx_tasks_session_status).
    has_unfinished=f"SELECT 1 FROM tasks WHERE session_id = %s AND status NOT IN {FINISHED} LIMIT 1",
    has_failed="SELECT 1 FROM tasks WHERE session_id = %s AND status = 'failed' LIMIT 1",
    status="SELECT status, closed_at FROM orchestration_sessions WHERE session_id = %s",
    end=(
        "UPDATE orchestration_sessions SET status = %s, status_reason = %s, finished_at = %s, updated_at = %s"
        " WHERE session_id = %s"
    ),
    close=(
        "UPDATE orchestration_sessions SET closed_at = %s, summary = %s, updated_at = %s"
        " WHERE session_id = %s"
    ),
    set_summary="UPDATE orchestration_sessions SET summary = %s, updated_at = %s WHERE session_id = %s",
    unfinished_tasks=f"SELECT * FROM tasks WHERE session_id = %s AND status NOT IN {FINISHED} ORDER BY path",
    cancel=(
        "UPDATE orchestration_sessions SET closed_at = coalesce(closed_at, %s), summary = %s"
        " WHERE session_id = %s"
    ),
    archive=(
        "UPDATE orchestration_sessions SET status = 'archived' WHERE session_id IN ("
        "SELECT session_id FROM orchestration_sessions"
        " WHERE status IN ('completed', 'failed', 'cancelled') AND finished_at < %s LIMIT %s)"
    ),
    delete_archived=(
        "DELETE FROM orchestration_sessions WHERE session_id IN ("
        "SELECT s.session_id FROM orchestration_sessions s WHERE s.status = 'archived'"
        " AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.session_id = s.session_id)"
        " AND NOT EXISTS (SELECT 1 FROM orchestration_sessions c WHERE c.parent_session_id = s.session_id)"
        " LIMIT %s)"
    ),
)

A2A = A2AQueries(
    entry=f"SELECT {A2A_ENTRY} FROM a2a_tasks WHERE task_id = %s",
    save_entry=(
        f"INSERT INTO a2a_tasks ({A2A_ENTRY}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (task_id) DO UPDATE SET state = excluded.state, status_at = excluded.status_at,"
        " turns = excluded.turns, artifacts = excluded.artifacts, context_id = excluded.context_id"
    ),
    configs_of_task="SELECT config_id FROM a2a_push_configs WHERE task_id = %s ORDER BY config_id",
    queue_event=(
        "INSERT INTO a2a_push_events (task_id, config_id, body, next_at, created_at)"
        " VALUES (%s, %s, %s, %s, %s)"
    ),
    top_root_seq="SELECT coalesce(max(root_seq), 0) FROM a2a_tasks",
    unindexed=(
        "SELECT t.task_id FROM tasks t WHERE t.task_type = %s AND t.level = 0 AND t.seq > %s"
        " AND NOT EXISTS (SELECT 1 FROM a2a_tasks a WHERE a.task_id = t.task_id) ORDER BY t.seq LIMIT %s"
    ),
    save_config=(
        f"INSERT INTO a2a_push_configs ({A2A_CONFIG}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (task_id, config_id) DO UPDATE SET owner = excluded.owner, url = excluded.url,"
        " token = excluded.token, auth_scheme = excluded.auth_scheme,"
        " auth_credentials = excluded.auth_credentials"
    ),
    config=f"SELECT {A2A_CONFIG} FROM a2a_push_configs WHERE task_id = %s AND config_id = %s",
    configs_after=(
        f"SELECT {A2A_CONFIG} FROM a2a_push_configs WHERE task_id = %s AND config_id > %s"
        " ORDER BY config_id LIMIT %s"
    ),
    delete_config="DELETE FROM a2a_push_configs WHERE task_id = %s AND config_id = %s",
    delete_pending_events=(
        "DELETE FROM a2a_push_events WHERE task_id = %s AND config_id = %s AND status = 'pending'"
    ),
    due_heads=(
        f"SELECT {A2A_EVENT} FROM a2a_push_events e WHERE e.status = 'pending' AND e.next_at <= %s"
        " AND (e.lease_until IS NULL OR e.lease_until < %s)"
        " AND NOT EXISTS (SELECT 1 FROM a2a_push_events p WHERE p.status = 'pending'"
        " AND p.task_id = e.task_id AND p.config_id = e.config_id AND p.seq < e.seq)"
        " ORDER BY e.next_at, e.seq LIMIT %s"
    ),
    lease_event=(
        "UPDATE a2a_push_events SET lease_until = %s WHERE seq = %s AND status = 'pending'"
        " AND (lease_until IS NULL OR lease_until < %s)"
    ),
    next_due="SELECT min(next_at) FROM a2a_push_events WHERE status = 'pending'",
    settle_delivered=(
        "UPDATE a2a_push_events SET status = 'delivered', attempt = attempt + 1, lease_until = NULL,"
        " settled_at = %s WHERE seq = %s AND status = 'pending'"
    ),
    settle_retry=(
        "UPDATE a2a_push_events SET attempt = attempt + 1, next_at = %s, lease_until = NULL,"
        " last_error = %s WHERE seq = %s AND status = 'pending'"
    ),
    settle_dead=(
        "UPDATE a2a_push_events SET status = 'dead', attempt = attempt + 1, lease_until = NULL,"
        " last_error = %s, settled_at = %s WHERE seq = %s AND status = 'pending'"
    ),
    event_counts="SELECT status, count(*) FROM a2a_push_events GROUP BY status",
    events_by_status=f"SELECT {A2A_EVENT} FROM a2a_push_events WHERE status = %s ORDER BY seq DESC LIMIT %s",
    purge_events=(
        "DELETE FROM a2a_push_events WHERE seq IN (SELECT seq FROM a2a_push_events"
        " WHERE status = 'delivered' AND settled_at < %s LIMIT %s)"
    ),
)

CENSUS = CensusQueries(
    by_status_kind="SELECT status, target_kind, count(*) FROM a2a_messages GROUP BY status, target_kind",
    scheduled=(
        "SELECT target_kind, count(*) FROM a2a_messages WHERE deliver_after IS NOT NULL"
        " AND status = 'pending' AND deliver_after > %s GROUP BY target_kind"
    ),
    agent_backlog=(
        "SELECT recipient_id, count(*) FROM a2a_messages WHERE status = 'pending'"
        " AND recipient_id IS NOT NULL GROUP BY recipient_id ORDER BY count(*) DESC, recipient_id LIMIT %s"
    ),
    capability_backlog=(
        "SELECT target_capability, count(*) FROM a2a_messages WHERE status = 'pending'"
        " AND recipient_id IS NULL GROUP BY target_capability"
        " ORDER BY count(*) DESC, target_capability LIMIT %s"
    ),
    tasks="SELECT status, count(*) FROM tasks GROUP BY status",
    agents="SELECT status, count(*) FROM agents WHERE status != 'deregistered' GROUP BY status",
    size="SELECT pg_database_size(current_database())",
)

TOKENS = TokenQueries(
    insert=(
        "INSERT INTO tokens (token_id, secret_hash, subject, role, created_at, expires_at, revoked_at, note)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
    ),
    fetch=(
        "SELECT token_id, secret_hash, subject, role, created_at, expires_at, revoked_at, note FROM tokens"
        " WHERE token_id = %s"
    ),
    list=(
        "SELECT token_id, secret_hash, subject, role, created_at, expires_at, revoked_at, note FROM tokens"
        " ORDER BY created_at, token_id"
    ),
    revoke="UPDATE tokens SET revoked_at = coalesce(revoked_at, %s) WHERE token_id = %s",
    changed=wire.notify_sql(wire.TOKENS),
    count_pending=(
        "SELECT count(*) FROM (SELECT 1 FROM a2a_messages WHERE recipient_id = %s AND status = 'pending'"
        " LIMIT %s) AS held"  # PostgreSQL 15 wants the alias
    ),
    pending_by_sender=(
        "SELECT sender_id, count(*) FROM (SELECT sender_id FROM a2a_messages WHERE recipient_id = %s"
        " AND status = 'pending' LIMIT %s) AS held GROUP BY sender_id"
    ),
)


_DUE = rules.due_sql(named)
_ORDER = rules.CLAIM_ORDER_SQL
_CLAIM = (
    f"UPDATE a2a_messages SET {rules.deliver_sql(named)}{{}} WHERE seq = ANY(%(seqs)s)"
    f" RETURNING {MESSAGE_COLUMNS}"
)
# A purge on request: the oldest copies in one status created before a time.
_PURGE_PICK = "SELECT seq FROM a2a_messages WHERE status = %s AND created_at < %s ORDER BY seq LIMIT %s"

MESSAGES = MessageQueries(
    pack=list,
    pack_held=_pack_held,
    get=f"SELECT {MESSAGE_COLUMNS} FROM a2a_messages WHERE message_id = %s",
    due_scheduled=(
        "SELECT DISTINCT recipient_id, target_capability FROM a2a_messages"
        " WHERE deliver_after IS NOT NULL AND status = 'pending'"
        " AND deliver_after > %(before)s AND deliver_after <= %(now)s"
    ),
    registered="SELECT agent_id FROM agents WHERE agent_id = ANY(%s) AND status != 'deregistered'",
    capabilities=(
        "SELECT DISTINCT c.capability FROM agent_capabilities c JOIN agents a ON a.agent_id = c.agent_id"
        " WHERE c.capability = ANY(%s) AND a.status != 'deregistered'"
    ),
    capable=(
        "SELECT 1 FROM agent_capabilities c JOIN agents a ON a.agent_id = c.agent_id"
        " WHERE c.capability = %s AND a.status != 'deregistered' LIMIT 1"
    ),
    purge_sends_of=(
        "DELETE FROM message_sends WHERE (sender_id, idempotency_key) IN"
        f" (SELECT sender_id, idempotency_key FROM a2a_messages WHERE seq IN ({_PURGE_PICK})"
        " AND idempotency_key IS NOT NULL)"
    ),
    purge=f"DELETE FROM a2a_messages WHERE seq IN ({_PURGE_PICK})",
    conversations=(
        "SELECT conversation_id FROM a2a_messages WHERE conversation_id IS NOT NULL AND conversation_id > %s"
        " GROUP BY conversation_id ORDER BY conversation_id LIMIT %s"
    ),
    conversations_of=(
        "SELECT conversation_id FROM a2a_messages WHERE conversation_id IS NOT NULL AND conversation_id > %s"
        " AND (sender_id = %s OR recipient_id = %s) GROUP BY conversation_id ORDER BY conversation_id"
        " LIMIT %s"
    ),
    conversation_stats=(
        "SELECT count(DISTINCT send_id), max(created_at) FROM a2a_messages WHERE conversation_id = %s"
    ),
    conversation_people=(
        "SELECT sender_id, recipient_id FROM a2a_messages WHERE conversation_id = %s"
        " GROUP BY sender_id, recipient_id"
    ),
    prior_send="SELECT message_ids FROM message_sends WHERE sender_id = %s AND idempotency_key = %s",
    record_send=(
        "INSERT INTO message_sends (sender_id, idempotency_key, send_id, message_ids, created_at)"
        " VALUES (%s, %s, %s, %s, %s)"
    ),
    broadcast=f"""
INSERT INTO a2a_messages ({MESSAGE_INSERT_COLUMNS})
SELECT %(send_id)s || '.' || row_number() OVER (ORDER BY a.agent_id), %(send_id)s, %(sender)s, a.agent_id,
       'broadcast', %(cap)s, %(type)s, %(payload)s, %(ctype)s, %(prio)s, %(corr)s, %(conv)s, %(headers)s,
       %(key)s, %(max)s, %(now)s, %(after)s, %(expires)s
FROM agents a
WHERE a.status != 'deregistered' AND (%(incl)s OR a.agent_id != %(sender)s)
  AND (CAST(%(cap)s AS text) IS NULL OR a.agent_id IN
       (SELECT agent_id FROM agent_capabilities WHERE capability = %(cap)s))
ORDER BY a.agent_id
RETURNING message_id, recipient_id
""",
    next_direct=(
        "SELECT seq, priority FROM a2a_messages WHERE recipient_id = %(agent)s AND status = 'pending'"
        f" AND {_DUE} ORDER BY {_ORDER} LIMIT %(n)s FOR UPDATE SKIP LOCKED"
    ),
    next_anycast=(
        "SELECT seq, priority FROM a2a_messages WHERE target_capability = %(cap)s AND recipient_id IS NULL"
        f" AND status = 'pending' AND {_DUE} ORDER BY {_ORDER} LIMIT %(n)s FOR UPDATE SKIP LOCKED"
    ),
    claim_seqs=_CLAIM.format(""),
    claim_anycast_seqs=_CLAIM.format(", recipient_id = %(agent)s"),
    owners="SELECT message_id, recipient_id, status FROM a2a_messages WHERE message_id = ANY(%s)",
    nack=release("recipient_id = %(agent)s AND message_id = ANY(%(ids)s)"),
    release_held=release(
        "(message_id, attempt) IN"
        " (SELECT * FROM unnest(CAST(%(held_ids)s AS text[]), CAST(%(held_attempts)s AS int[])))"
    ),
    release_stale=release("delivered_at < %(before)s"),
    release_agent=release("recipient_id = %(agent)s"),
    statuses="SELECT message_id, status FROM a2a_messages WHERE message_id = ANY(%s)",
    requeue=(
        f"UPDATE a2a_messages SET {rules.REQUEUE_SQL} WHERE message_id = ANY(%s) AND status = 'failed'"
        " RETURNING message_id, attempt, status, recipient_id, target_capability, deliver_after"
    ),
)

POSTGRES = Queries(
    param="%s",
    agents=AGENTS,
    tasks=TASKS,
    sessions=SESSIONS,
    schedules=SCHEDULES,
    a2a=A2A,
    census=CENSUS,
    tokens=TOKENS,
    messages=MESSAGES,
    subjects=SUBJECTS,
    limits=LIMITS,
)
