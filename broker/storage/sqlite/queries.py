"""SQLite's statements, by name (``sql/queries.py`` says what each set holds): ``?`` and ``:name``
parameters, id lists as one JSON array (``json_each``), and ``INDEXED BY`` where a hot statement's
plan is not left to a planner that may have no statistics (the plan tests,
tests/unit/test_*query_plans.py, pin each one to its index).

The message statements are composed from the rules' fragments (``broker.domain.messages``), given
SQLite's style of named parameter (``named``).
"""

from __future__ import annotations

import json
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
from .limits_queries import LIMITS
from .params import named
from .queries_schedules import SCHEDULES
from .subject_queries import SUBJECTS


def release(where: str) -> str:
    """Hand deliveries back (``rules.release_sql``, set-based) where ``where`` holds."""
    return f"""
UPDATE a2a_messages SET {rules.release_sql(named)}
WHERE status = 'delivered' AND {where}
RETURNING message_id, attempt + :refund, status, recipient_id, target_capability, deliver_after
"""


def _pack_held(held: list[tuple[str, int]]) -> dict[str, Any]:
    return {"held": json.dumps(held)}


AGENTS = AgentQueries(
    fetch="SELECT * FROM agents WHERE agent_id = ?",
    register="""
        INSERT INTO agents (agent_id, name, agent_type, capabilities, max_concurrent_tasks,
            endpoint, labels, metadata, status, registered_at, updated_at, last_heartbeat_at,
            exposure, capability_descriptions)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
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
    delete_capabilities="DELETE FROM agent_capabilities WHERE agent_id = ?",
    insert_capability="INSERT INTO agent_capabilities (capability, agent_id) VALUES (?, ?)",
    heartbeat=(
        "UPDATE agents SET status = ?, last_heartbeat_at = ?, updated_at = ?,"
        " reported_free_capacity = ? WHERE agent_id = ?"
    ),
    deregister=(
        "UPDATE agents SET status = 'deregistered', updated_at = ?, reported_free_capacity = NULL"
        " WHERE agent_id = ?"
    ),
    # The tasks an agent finished (it held them last) since a time, newest first: its record's
    # input. idx_tasks_agent (assigned_agent_id, status, seq) narrows to its finished tasks.
    outcomes=(
        "SELECT status, finished_at - started_at FROM tasks"
        " WHERE assigned_agent_id = ? AND status IN ('completed', 'failed') AND finished_at >= ?"
        " AND started_at IS NOT NULL ORDER BY finished_at DESC LIMIT ?"
    ),
    # The sweeper's liveness scan (idx_agents_liveness). INDEXED BY: without statistics the
    # planner may prefer idx_agents_status, which reads every live agent; the partial index reads
    # only the overdue ones.
    # Offline agents silent since before a time (idx_agents_status: the offline ones, by id).
    offline_since=(
        "SELECT * FROM agents WHERE status = 'offline' AND last_heartbeat_at < ? ORDER BY agent_id LIMIT ?"
    ),
    liveness_scan=(
        "SELECT * FROM agents INDEXED BY idx_agents_liveness"
        " WHERE status IN ('available', 'busy', 'maintenance') AND last_heartbeat_at < ?"
    ),
    set_heartbeat="UPDATE agents SET last_heartbeat_at = ? WHERE agent_id = ?",
    set_offline="UPDATE agents SET status = 'offline', updated_at = ? WHERE agent_id = ?",
)

TASKS = TaskQueries(
    fetch="SELECT * FROM tasks WHERE task_id = ?",
    # -- dispatch and the sweeper (each served by the index named; tests/unit/test_task_query_plans.py).
    # INDEXED BY: without statistics the planner would rather take idx_tasks_status (status = ?) and
    # sort; a hot query's plan is not left to chance.
    # The next ready tasks of one capability set, best first: an equality on capset_id then the
    # index order, no sort.
    next_ready=(
        "SELECT dispatch_rank, seq, task_id FROM tasks INDEXED BY idx_tasks_ready"
        " WHERE capset_id = ? AND status = 'ready' AND in_backoff = 0 AND concurrency_key IS NULL"
        " ORDER BY dispatch_rank DESC, seq LIMIT ?"
    ),
    expired_leases=(
        f"SELECT * FROM tasks INDEXED BY idx_tasks_lease WHERE {leases.lapsed_sql(named)}"
        " ORDER BY lease_expires_at LIMIT :lim"
    ),
    timed_out=(
        "SELECT * FROM tasks INDEXED BY idx_tasks_run_deadline"
        " WHERE status = 'running' AND run_deadline IS NOT NULL AND run_deadline <= ?"
        " ORDER BY run_deadline LIMIT ?"
    ),
    due_backoff=(
        "SELECT task_id, capset_id FROM tasks INDEXED BY idx_tasks_backoff"
        " WHERE status = 'ready' AND in_backoff = 1 AND next_attempt_at <= ?"
    ),
    end_backoff=(
        "UPDATE tasks SET in_backoff = 0, updated_at = ? WHERE task_id = ?"
        " RETURNING required_capabilities, capset_id, concurrency_key, dispatch_rank, created_at"
    ),
    held_due=(
        "SELECT * FROM tasks INDEXED BY idx_tasks_not_before"
        " WHERE status = 'pending' AND not_before <= ? ORDER BY not_before LIMIT ?"
    ),
    # A departed agent's running tasks.
    holder_running=(
        "SELECT * FROM tasks INDEXED BY idx_tasks_agent"
        " WHERE assigned_agent_id = ? AND status = 'running' ORDER BY seq"
    ),
    # Ready tasks inside the deadline-urgency horizon.
    urgency_window=(
        "SELECT task_id, priority, deadline, urgency, created_at, capset_id, concurrency_key"
        " FROM tasks INDEXED BY idx_tasks_deadline"
        " WHERE status = 'ready' AND deadline IS NOT NULL AND deadline < ?"
    ),
    set_urgency="UPDATE tasks SET urgency = ?, dispatch_rank = ? WHERE task_id = ?",
    # -- capability sets
    insert_capset=(
        "INSERT INTO capability_sets (capset_id, caps, keyed) VALUES (?, ?, ?) ON CONFLICT DO NOTHING"
    ),
    # count and sum of the ids: any change of the table's content changes this (the sum is of the
    # ids modulo a prime: a sum of 63-bit ids would overflow).
    # (and the limits' epoch: they changed when it did)
    capsets_census=(
        "SELECT count(*), coalesce(sum(capset_id % 1000003), 0), (SELECT epoch FROM concurrency_epoch)"
        " FROM capability_sets"
    ),
    capsets="SELECT capset_id, caps, keyed FROM capability_sets",
    # -- leases
    lease=(
        "UPDATE tasks SET status = 'running', assigned_agent_id = ?, attempt = attempt + 1,"
        " lease_expires_at = ? + lease_timeout_us, started_at = ?, updated_at = ?, next_attempt_at = NULL,"
        " run_deadline = ? + max_run_us, progress = 0, status_note = NULL, holds = NULL"
        " WHERE task_id IN ({}) AND status = 'ready' RETURNING *"
    ),
    lease_agent=(
        "SELECT status, capabilities, max_concurrent_tasks, current_task_count, reported_free_capacity,"
        " exposure, agent_type FROM agents WHERE agent_id = ?"
    ),
    # One statement checks the lease (``domain.leases.current_sql``) and completes; a refusal
    # asks ``leases.refusal`` why.
    complete=(
        "UPDATE tasks SET status = 'completed', lease_expires_at = NULL, result = :result,"
        " result_content_type = :ctype, progress = 100, finished_at = :now, updated_at = :now"
        f" WHERE task_id = :task AND {leases.current_sql(named)} RETURNING *"
    ),
    return_lease=(
        "UPDATE tasks SET status = 'ready', assigned_agent_id = NULL, lease_expires_at = NULL,"
        " attempt = attempt - 1, started_at = NULL, updated_at = ? WHERE task_id = ?"
    ),
    extend=(
        "UPDATE tasks SET lease_expires_at = ?, progress = coalesce(?, progress),"
        " status_note = coalesce(?, status_note), updated_at = ? WHERE task_id = ?"
    ),
    last_failure=(
        "SELECT actor, error, retryable FROM task_state_history WHERE task_id = ? AND attempt = ?"
        " AND from_status = 'running' ORDER BY id DESC LIMIT 1"
    ),
    purge=(
        "DELETE FROM tasks WHERE task_id IN (SELECT t.task_id FROM tasks t"
        f" WHERE t.status IN {FINISHED} AND t.finished_at < ?"
        " AND NOT EXISTS (SELECT 1 FROM tasks c WHERE c.parent_id = t.task_id) LIMIT ?)"
    ),
    # -- state changes (tasks_tx.py)
    make_ready=(
        "UPDATE tasks SET status = 'ready', urgency = ?, dispatch_rank = ?, updated_at = ? WHERE task_id = ?"
    ),
    retry=(
        "UPDATE tasks SET status = 'ready', assigned_agent_id = NULL, lease_expires_at = NULL,"
        " last_error = ?, next_attempt_at = ?, in_backoff = ?, urgency = ?, dispatch_rank = ?,"
        " updated_at = ? WHERE task_id = ?"
    ),
    fail=(
        "UPDATE tasks SET status = 'failed', lease_expires_at = NULL, last_error = ?,"
        " next_attempt_at = NULL, finished_at = ?, updated_at = ? WHERE task_id = ?"
    ),
    depart=(
        "UPDATE tasks SET status = 'ready', assigned_agent_id = NULL, lease_expires_at = NULL,"
        " last_error = ?, next_attempt_at = NULL, in_backoff = 0, urgency = ?, dispatch_rank = ?,"
        " departures = departures + 1, updated_at = ? WHERE task_id = ?"
    ),
    cancel=(
        "UPDATE tasks SET status = 'cancelled', lease_expires_at = NULL, last_error = ?,"
        " next_attempt_at = NULL, in_backoff = 0, finished_at = ?, updated_at = ? WHERE task_id = ?"
    ),
    unfinished_below=(
        "SELECT * FROM tasks WHERE path >= ? AND path < ? AND path != ?"
        f" AND status NOT IN {FINISHED} ORDER BY path"
    ),
    # -- dependencies
    resolve_edges=(
        "UPDATE task_dependencies SET resolved_at = ? WHERE prerequisite_id = ? AND resolved_at IS NULL"
    ),
    # Dependents of a task (idx_task_dependencies_prerequisite).
    dependents="SELECT dependent_id, dep_type FROM task_dependencies WHERE prerequisite_id = ?",
    # Unfinished prerequisites of a task (primary key of task_dependencies, then tasks by id).
    unfinished_prereqs=(
        "SELECT count(*) FROM task_dependencies d JOIN tasks p ON p.task_id = d.prerequisite_id"
        f" WHERE d.dependent_id = ? AND p.status NOT IN {FINISHED}"
    ),
    prereq=("SELECT status, dep_depth FROM tasks WHERE task_id = ?"),
    dep_depth="SELECT dep_depth FROM tasks WHERE task_id = ?",
    set_dep_depth="UPDATE tasks SET dep_depth = ? WHERE task_id = ?",
    insert_edge=(
        "INSERT INTO task_dependencies (dependent_id, prerequisite_id, dep_type, resolved_at, ordinal)"
        " VALUES (?, ?, ?, ?, ?)"
    ),
    delete_edge="DELETE FROM task_dependencies WHERE dependent_id = ? AND prerequisite_id = ?",
    mark_has_dependents="UPDATE tasks SET has_dependents = 1 WHERE task_id = ? AND has_dependents = 0",
    touch="UPDATE tasks SET updated_at = ? WHERE task_id = ?",
    prerequisites_of=(
        "SELECT prerequisite_id, dep_type, ordinal FROM task_dependencies WHERE dependent_id = ?"
        " ORDER BY ordinal"
    ),
    deepest_prereq=(
        "SELECT max(p.dep_depth) FROM task_dependencies d JOIN tasks p ON p.task_id = d.prerequisite_id"
        " WHERE d.dependent_id = ?"
    ),
    set_status="UPDATE tasks SET status = ? WHERE task_id = ?",
    # -- submission
    by_idempotency_key=(
        "SELECT task_id, idempotency_fingerprint, parent_id FROM tasks WHERE idempotency_key = ?"
    ),
    parent="SELECT root_id, level, path, session_id FROM tasks WHERE task_id = ?",
    insert=(
        f"INSERT INTO tasks ({TASK_INSERT_COLUMNS}) VALUES ("
        + ", ".join(f":{c.strip()}" for c in TASK_INSERT_COLUMNS.split(","))
        + ") RETURNING seq"
    ),
    insert_tag="INSERT INTO task_tags (tag, seq) VALUES (?, ?)",
    insert_label="INSERT INTO task_labels (label, seq) VALUES (?, ?)",
    insert_capability="INSERT INTO task_capabilities (capability, seq) VALUES (?, ?)",
    # -- reads
    # A subtree by materialized path (idx_tasks_path): every path starting with the prefix.
    subtree="SELECT * FROM tasks WHERE path >= ? AND path < ? ORDER BY path LIMIT ?",
    # GetTree: the whole subtree's counts, then a page of it after a path (optionally depth-limited).
    subtree_counts=(
        "SELECT status, count(*), sum(progress) FROM tasks WHERE path >= ? AND path < ? GROUP BY status"
    ),
    subtree_page="SELECT * FROM tasks WHERE path >= ? AND path < ? AND path > ? ORDER BY path LIMIT ?",
    subtree_page_depth=(
        "SELECT * FROM tasks WHERE path >= ? AND path < ? AND path > ? AND level <= ? ORDER BY path LIMIT ?"
    ),
    exists="SELECT 1 FROM tasks WHERE task_id = ?",
    path="SELECT path FROM tasks WHERE task_id = ?",
    history="SELECT * FROM task_state_history WHERE task_id = ? ORDER BY id",
    last_transition="SELECT * FROM task_state_history WHERE task_id = ? ORDER BY id DESC LIMIT 1",
    of_session="SELECT * FROM tasks WHERE session_id = ? ORDER BY seq LIMIT ?",
    prerequisites=(
        "SELECT d.prerequisite_id, d.dep_type, d.resolved_at, p.status, p.title FROM task_dependencies d"
        " JOIN tasks p ON p.task_id = d.prerequisite_id WHERE d.dependent_id = ? ORDER BY p.seq"
    ),
    dependent_edges=(
        "SELECT d.dependent_id, d.dep_type, d.resolved_at, t.status, t.title FROM task_dependencies d"
        " JOIN tasks t ON t.task_id = d.dependent_id WHERE d.prerequisite_id = ? ORDER BY t.seq"
    ),
)

SESSIONS = SessionQueries(
    fetch=f"SELECT {SESSION_COLUMNS} FROM orchestration_sessions WHERE session_id = ?",
    exists="SELECT 1 FROM orchestration_sessions WHERE session_id = ?",
    insert=(
        "INSERT INTO orchestration_sessions (session_id, name, parent_session_id, created_by, context,"
        " labels, status, deadline, max_tasks, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, 'active', ?, ?, ?, ?)"
    ),
    insert_implicit=(
        "INSERT INTO orchestration_sessions (session_id, created_by, created_at, updated_at)"
        " VALUES (?, ?, ?, ?)"
    ),
    admission="SELECT status, max_tasks FROM orchestration_sessions WHERE session_id = ?",
    task_total="SELECT count(*) FROM tasks WHERE session_id = ?",
    task_counts="SELECT status, count(*) FROM tasks WHERE session_id = ? GROUP BY status",
    # Whether a session has an unfinished task, and a task failed for good
    # (idx_tasks_session_status).
    has_unfinished=f"SELECT 1 FROM tasks WHERE session_id = ? AND status NOT IN {FINISHED} LIMIT 1",
    has_failed="SELECT 1 FROM tasks WHERE session_id = ? AND status = 'failed' LIMIT 1",
    status="SELECT status, closed_at FROM orchestration_sessions WHERE session_id = ?",
    end=(
        "UPDATE orchestration_sessions SET status = ?, status_reason = ?, finished_at = ?, updated_at = ?"
        " WHERE session_id = ?"
    ),
    close=(
        "UPDATE orchestration_sessions SET closed_at = ?, summary = ?, updated_at = ? WHERE session_id = ?"
    ),
    set_summary="UPDATE orchestration_sessions SET summary = ?, updated_at = ? WHERE session_id = ?",
    unfinished_tasks=f"SELECT * FROM tasks WHERE session_id = ? AND status NOT IN {FINISHED} ORDER BY path",
    cancel=(
        "UPDATE orchestration_sessions SET closed_at = coalesce(closed_at, ?), summary = ?"
        " WHERE session_id = ?"
    ),
    archive=(
        "UPDATE orchestration_sessions SET status = 'archived' WHERE session_id IN ("
        "SELECT session_id FROM orchestration_sessions"
        " WHERE status IN ('completed', 'failed', 'cancelled') AND finished_at < ? LIMIT ?)"
    ),
    delete_archived=(
        "DELETE FROM orchestration_sessions WHERE session_id IN ("
        "SELECT s.session_id FROM orchestration_sessions s WHERE s.status = 'archived'"
        " AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.session_id = s.session_id)"
        " AND NOT EXISTS (SELECT 1 FROM orchestration_sessions c WHERE c.parent_session_id = s.session_id)"
        " LIMIT ?)"
    ),
)

A2A = A2AQueries(
    entry=f"SELECT {A2A_ENTRY} FROM a2a_tasks WHERE task_id = ?",
    save_entry=(
        f"INSERT INTO a2a_tasks ({A2A_ENTRY}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (task_id) DO UPDATE SET state = excluded.state, status_at = excluded.status_at,"
        " turns = excluded.turns, artifacts = excluded.artifacts, context_id = excluded.context_id"
    ),
    configs_of_task="SELECT config_id FROM a2a_push_configs WHERE task_id = ? ORDER BY config_id",
    queue_event=(
        "INSERT INTO a2a_push_events (task_id, config_id, body, next_at, created_at) VALUES (?, ?, ?, ?, ?)"
    ),
    top_root_seq="SELECT coalesce(max(root_seq), 0) FROM a2a_tasks",
    unindexed=(
        "SELECT t.task_id FROM tasks t WHERE t.task_type = ? AND t.level = 0 AND t.seq > ?"
        " AND NOT EXISTS (SELECT 1 FROM a2a_tasks a WHERE a.task_id = t.task_id) ORDER BY t.seq LIMIT ?"
    ),
    save_config=(
        f"INSERT INTO a2a_push_configs ({A2A_CONFIG}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (task_id, config_id) DO UPDATE SET owner = excluded.owner, url = excluded.url,"
        " token = excluded.token, auth_scheme = excluded.auth_scheme,"
        " auth_credentials = excluded.auth_credentials"
    ),
    config=f"SELECT {A2A_CONFIG} FROM a2a_push_configs WHERE task_id = ? AND config_id = ?",
    configs_after=(
        f"SELECT {A2A_CONFIG} FROM a2a_push_configs WHERE task_id = ? AND config_id > ?"
        " ORDER BY config_id LIMIT ?"
    ),
    delete_config="DELETE FROM a2a_push_configs WHERE task_id = ? AND config_id = ?",
    delete_pending_events=(
        "DELETE FROM a2a_push_events WHERE task_id = ? AND config_id = ? AND status = 'pending'"
    ),
    due_heads=(
        f"SELECT {A2A_EVENT} FROM a2a_push_events e WHERE e.status = 'pending' AND e.next_at <= ?"
        " AND (e.lease_until IS NULL OR e.lease_until < ?)"
        " AND NOT EXISTS (SELECT 1 FROM a2a_push_events p WHERE p.status = 'pending'"
        " AND p.task_id = e.task_id AND p.config_id = e.config_id AND p.seq < e.seq)"
        " ORDER BY e.next_at, e.seq LIMIT ?"
    ),
    lease_event=(
        "UPDATE a2a_push_events SET lease_until = ? WHERE seq = ? AND status = 'pending'"
        " AND (lease_until IS NULL OR lease_until < ?)"
    ),
    next_due="SELECT min(next_at) FROM a2a_push_events WHERE status = 'pending'",
    settle_delivered=(
        "UPDATE a2a_push_events SET status = 'delivered', attempt = attempt + 1, lease_until = NULL,"
        " settled_at = ? WHERE seq = ? AND status = 'pending'"
    ),
    settle_retry=(
        "UPDATE a2a_push_events SET attempt = attempt + 1, next_at = ?, lease_until = NULL,"
        " last_error = ? WHERE seq = ? AND status = 'pending'"
    ),
    settle_dead=(
        "UPDATE a2a_push_events SET status = 'dead', attempt = attempt + 1, lease_until = NULL,"
        " last_error = ?, settled_at = ? WHERE seq = ? AND status = 'pending'"
    ),
    event_counts="SELECT status, count(*) FROM a2a_push_events GROUP BY status",
    events_by_status=f"SELECT {A2A_EVENT} FROM a2a_push_events WHERE status = ? ORDER BY seq DESC LIMIT ?",
    purge_events=(
        "DELETE FROM a2a_push_events WHERE seq IN (SELECT seq FROM a2a_push_events"
        " WHERE status = 'delivered' AND settled_at < ? LIMIT ?)"
    ),
)

CENSUS = CensusQueries(
    by_status_kind="SELECT status, target_kind, count(*) FROM a2a_messages GROUP BY status, target_kind",
    scheduled=(
        "SELECT target_kind, count(*) FROM a2a_messages WHERE deliver_after IS NOT NULL"
        " AND status = 'pending' AND deliver_after > ? GROUP BY target_kind"
    ),
    agent_backlog=(
        "SELECT recipient_id, count(*) FROM a2a_messages WHERE status = 'pending'"
        " AND recipient_id IS NOT NULL GROUP BY recipient_id ORDER BY count(*) DESC, recipient_id LIMIT ?"
    ),
    capability_backlog=(
        "SELECT target_capability, count(*) FROM a2a_messages WHERE status = 'pending'"
        " AND recipient_id IS NULL GROUP BY target_capability"
        " ORDER BY count(*) DESC, target_capability LIMIT ?"
    ),
    tasks="SELECT status, count(*) FROM tasks GROUP BY status",
    agents="SELECT status, count(*) FROM agents WHERE status != 'deregistered' GROUP BY status",
    size="SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
)

TOKENS = TokenQueries(
    insert=(
        "INSERT INTO tokens (token_id, secret_hash, subject, role, created_at, expires_at, revoked_at, note)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    ),
    fetch=(
        "SELECT token_id, secret_hash, subject, role, created_at, expires_at, revoked_at, note FROM tokens"
        " WHERE token_id = ?"
    ),
    list=(
        "SELECT token_id, secret_hash, subject, role, created_at, expires_at, revoked_at, note FROM tokens"
        " ORDER BY created_at, token_id"
    ),
    revoke="UPDATE tokens SET revoked_at = coalesce(revoked_at, ?) WHERE token_id = ?",
    count_pending=(
        "SELECT count(*) FROM (SELECT 1 FROM a2a_messages WHERE recipient_id = ? AND status = 'pending'"
        " LIMIT ?) AS held"  # PostgreSQL 15 wants the alias
    ),
    pending_by_sender=(
        "SELECT sender_id, count(*) FROM (SELECT sender_id FROM a2a_messages WHERE recipient_id = ?"
        " AND status = 'pending' LIMIT ?) AS held GROUP BY sender_id"
    ),
)

_IN_IDS = "message_id IN (SELECT value FROM json_each(?))"
_DUE = rules.due_sql(named)
_ORDER = rules.CLAIM_ORDER_SQL
# A direct claim does not SET recipient_id: SQLite rewrites every index holding a column that an
# UPDATE sets, even to the same value (here three of them).
_CLAIM = (
    f"UPDATE a2a_messages SET {rules.deliver_sql(named)}{{}} WHERE seq IN ({{}}) RETURNING {MESSAGE_COLUMNS}"
)
# A purge on request: the oldest copies in one status created before a time.
_PURGE_PICK = "SELECT seq FROM a2a_messages WHERE status = ? AND created_at < ? ORDER BY seq LIMIT ?"

MESSAGES = MessageQueries(
    pack=json.dumps,
    pack_held=_pack_held,
    get=f"SELECT {MESSAGE_COLUMNS} FROM a2a_messages WHERE message_id = ?",
    due_scheduled=(
        "SELECT DISTINCT recipient_id, target_capability FROM a2a_messages"
        " WHERE deliver_after IS NOT NULL AND status = 'pending'"
        " AND deliver_after > :before AND deliver_after <= :now"
    ),
    registered=(
        "SELECT agent_id FROM agents WHERE agent_id IN (SELECT value FROM json_each(?))"
        " AND status != 'deregistered'"
    ),
    capabilities=(
        "SELECT DISTINCT c.capability FROM agent_capabilities c JOIN agents a ON a.agent_id = c.agent_id"
        " WHERE c.capability IN (SELECT value FROM json_each(?)) AND a.status != 'deregistered'"
    ),
    capable=(
        "SELECT 1 FROM agent_capabilities c JOIN agents a ON a.agent_id = c.agent_id"
        " WHERE c.capability = ? AND a.status != 'deregistered' LIMIT 1"
    ),
    purge_sends_of=(
        "DELETE FROM message_sends WHERE (sender_id, idempotency_key) IN"
        f" (SELECT sender_id, idempotency_key FROM a2a_messages WHERE seq IN ({_PURGE_PICK})"
        " AND idempotency_key IS NOT NULL)"
    ),
    purge=f"DELETE FROM a2a_messages WHERE seq IN ({_PURGE_PICK})",
    conversations=(
        "SELECT conversation_id FROM a2a_messages WHERE conversation_id IS NOT NULL AND conversation_id > ?"
        " GROUP BY conversation_id ORDER BY conversation_id LIMIT ?"
    ),
    # A participant's conversations: its sends (idx_messages_sender) and its copies
    # (idx_messages_recipient).
    conversations_of=(
        "SELECT conversation_id FROM a2a_messages WHERE conversation_id IS NOT NULL AND conversation_id > ?"
        " AND (sender_id = ? OR recipient_id = ?) GROUP BY conversation_id ORDER BY conversation_id LIMIT ?"
    ),
    conversation_stats=(
        "SELECT count(DISTINCT send_id), max(created_at) FROM a2a_messages WHERE conversation_id = ?"
    ),
    conversation_people=(
        "SELECT sender_id, recipient_id FROM a2a_messages WHERE conversation_id = ?"
        " GROUP BY sender_id, recipient_id"
    ),
    prior_send="SELECT message_ids FROM message_sends WHERE sender_id = ? AND idempotency_key = ?",
    record_send=(
        "INSERT INTO message_sends (sender_id, idempotency_key, send_id, message_ids, created_at)"
        " VALUES (?, ?, ?, ?, ?)"
    ),
    broadcast=f"""
INSERT INTO a2a_messages ({MESSAGE_INSERT_COLUMNS})
SELECT :send_id || '.' || row_number() OVER (ORDER BY a.agent_id), :send_id, :sender, a.agent_id,
       'broadcast', :cap, :type, :payload, :ctype, :prio, :corr, :conv, :headers, :key, :max, :now,
       :after, :expires
FROM agents a
WHERE a.status != 'deregistered' AND (:incl OR a.agent_id != :sender)
  AND (:cap IS NULL OR a.agent_id IN (SELECT agent_id FROM agent_capabilities WHERE capability = :cap))
ORDER BY a.agent_id
RETURNING message_id, recipient_id
""",
    next_direct=(
        "SELECT seq, priority FROM a2a_messages WHERE recipient_id = :agent AND status = 'pending'"
        f" AND {_DUE} ORDER BY {_ORDER} LIMIT :n"
    ),
    next_anycast=(
        "SELECT seq, priority FROM a2a_messages WHERE target_capability = :cap AND recipient_id IS NULL"
        f" AND status = 'pending' AND {_DUE} ORDER BY {_ORDER} LIMIT :n"
    ),
    claim_seqs=_CLAIM.format("", "SELECT value FROM json_each(:seqs)"),
    claim_anycast_seqs=_CLAIM.format(", recipient_id = :agent", "SELECT value FROM json_each(:seqs)"),
    owners=f"SELECT message_id, recipient_id, status FROM a2a_messages WHERE {_IN_IDS}",
    nack=release("+recipient_id = :agent AND message_id IN (SELECT value FROM json_each(:ids))"),
    release_held=release(
        "seq IN (SELECT m.seq FROM json_each(:held) j JOIN a2a_messages m"
        " ON m.message_id = j.value ->> 0 AND m.attempt = j.value ->> 1 WHERE m.status = 'delivered')"
    ),
    release_stale=release("delivered_at < :before"),
    release_agent=release(
        "seq IN (SELECT seq FROM a2a_messages INDEXED BY idx_messages_delivered_to"
        " WHERE recipient_id = :agent AND status = 'delivered')"
    ),
    statuses=f"SELECT message_id, status FROM a2a_messages WHERE {_IN_IDS}",
    requeue=(
        f"UPDATE a2a_messages SET {rules.REQUEUE_SQL} WHERE {_IN_IDS} AND status = 'failed'"
        " RETURNING message_id, attempt, status, recipient_id, target_capability, deliver_after"
    ),
)

SQLITE = Queries(
    param="?",
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
