"""PostgreSQL's statements for topics (``sql/queries.py``'s ``SubjectQueries`` says what each is):
deliveries named by arrays (``unnest``), and ``FOR UPDATE SKIP LOCKED`` where brokers claiming or
sweeping one subscription at the same moment should take different rows. What happens to a
delivery is the messages' rules (``broker.domain.messages``), as on SQLite.
"""

from __future__ import annotations

from typing import Any

from ...domain import messages as rules
from ...domain import subjects
from ..sql.queries import (
    DELIVERY_COLUMNS,
    DELIVERY_FROM,
    SUBJECT_MESSAGE_COLUMNS,
    SUBSCRIPTION_COLUMNS,
    SubjectQueries,
    delivery_returning,
)
from .params import named

_D = "subscription_deliveries"
_UNFINISHED = subjects.UNFINISHED_SQL
_POOL = subjects.RECIPIENT_WHEN_PENDING_SQL
_NAMED = (
    "(subscription_id, message_seq) IN (SELECT k.sub, m.seq"
    " FROM unnest(CAST(%(sends)s AS text[]), CAST(%(subs)s AS bigint[])) AS k(send, sub)"
    " JOIN subject_messages m ON m.message_id = k.send)"
)
_HELD = (
    "(subscription_id, message_seq, attempt) IN (SELECT k.sub, m.seq, k.attempt"
    " FROM unnest(CAST(%(held_sends)s AS text[]), CAST(%(held_subs)s AS bigint[]),"
    " CAST(%(held_attempts)s AS int[])) AS k(send, sub, attempt)"
    " JOIN subject_messages m ON m.message_id = k.send)"
)
_PAIRS = (
    "(subscription_id, message_seq) IN"
    " (SELECT * FROM unnest(CAST(%(pair_subs)s AS bigint[]), CAST(%(pair_seqs)s AS bigint[])))"
)


def _release(where: str) -> str:
    return (
        f"UPDATE {_D} SET {rules.release_sql(named, _POOL)} WHERE status = 'delivered' AND {where}"
        f" RETURNING {delivery_returning('attempt + %(refund)s')}"
    )


def _pack_deliveries(ids: list[tuple[str, int]]) -> dict[str, Any]:
    return {"sends": [i[0] for i in ids], "subs": [i[1] for i in ids]}


def _pack_held(held: list[tuple[str, int, int]]) -> dict[str, Any]:
    return {
        "held_sends": [h[0] for h in held],
        "held_subs": [h[1] for h in held],
        "held_attempts": [h[2] for h in held],
    }


def _pack_keys(keys: list[tuple[int, str]]) -> dict[str, Any]:
    return {"key_subs": [k[0] for k in keys], "keys": [k[1] for k in keys]}


def _pack_replay(rows: list[tuple[int, bool]]) -> dict[str, Any]:
    return {"seqs": [r[0] for r in rows], "blocked": [r[1] for r in rows]}


def _pack_seqs(pairs: list[tuple[int, int]]) -> dict[str, Any]:
    return {"pair_subs": [p[0] for p in pairs], "pair_seqs": [p[1] for p in pairs]}


_EXPIRES = (
    "CASE WHEN s.retention_us IS NULL THEN {exp} WHEN {exp} IS NULL THEN {base} + s.retention_us"
    " ELSE least({exp}, {base} + s.retention_us) END"
)
_INSERT = (
    f"INSERT INTO {_D} (subscription_id, message_seq, priority, ordering_key, blocked, max_attempts,"
    " deliver_after, expires_at)"
)

SUBJECTS = SubjectQueries(
    pack_deliveries=_pack_deliveries,
    pack_held=_pack_held,
    pack_keys=_pack_keys,
    pack_replay=_pack_replay,
    pack_seqs=_pack_seqs,
    # (the row may be missing: a database emptied by TRUNCATE or DELETE, as the tests do)
    version="SELECT COALESCE((SELECT version FROM subject_index_version WHERE singleton = 1), 0)",
    bump_version="INSERT INTO subject_index_version (singleton, version) VALUES (1, 1)"
    " ON CONFLICT (singleton) DO UPDATE SET version = subject_index_version.version + 1 RETURNING version",
    filters="SELECT subscription_id, filter FROM subscriptions",
    insert_subscription=(
        "INSERT INTO subscriptions (name, filter, ack_deadline_us, max_attempts, retention_us, ordering,"
        " dead_letter_subject, created_by, created_at)"
        " VALUES (%(name)s, %(filter)s, %(ack)s, %(max)s, %(retention)s, %(ordering)s, %(dls)s, %(by)s,"
        " %(now)s) RETURNING subscription_id"
    ),
    subscription=f"SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE name = %s",
    subscription_name="SELECT name FROM subscriptions WHERE subscription_id = %s",
    subscriptions_after=(
        f"SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE name > %s ORDER BY name LIMIT %s"
    ),
    unacked_figures=(
        f"SELECT status, count(*), min(message_seq) FROM {_D} WHERE subscription_id = %s AND {_UNFINISHED}"
        " GROUP BY status"
    ),
    dead_count=f"SELECT count(*) FROM {_D} WHERE subscription_id = %s AND status = 'failed'",
    sent_at="SELECT created_at FROM subject_messages WHERE seq = %s",
    delete_deliveries_of=f"DELETE FROM {_D} WHERE subscription_id = %s",
    delete_subscription="DELETE FROM subscriptions WHERE subscription_id = %s",
    insert_message=(
        "INSERT INTO subject_messages (message_id, subject, sender_id, message_type, payload, content_type,"
        " priority, correlation_id, conversation_id, headers, idempotency_key, ordering_key, created_at,"
        " deliver_after, expires_at)"
        " VALUES (%(id)s, %(subject)s, %(sender)s, %(type)s, %(payload)s, %(ctype)s, %(prio)s, %(corr)s,"
        " %(conv)s, %(headers)s, %(key)s, %(okey)s, %(now)s, %(after)s, %(expires)s) RETURNING seq"
    ),
    fan_out=f"""
{_INSERT}
SELECT s.subscription_id, %(seq)s, %(prio)s, CASE WHEN s.ordering THEN CAST(%(okey)s AS text) END,
       s.ordering AND CAST(%(okey)s AS text) IS NOT NULL AND EXISTS (
           SELECT 1 FROM {_D} e WHERE e.subscription_id = s.subscription_id
           AND e.ordering_key = CAST(%(okey)s AS text) AND e.{_UNFINISHED}),
       s.max_attempts, CAST(%(after)s AS bigint),
       {_EXPIRES.format(exp="CAST(%(expires)s AS bigint)", base="CAST(%(base)s AS bigint)")}
FROM subscriptions s WHERE s.subscription_id = ANY(CAST(%(subs)s AS bigint[]))
""",
    pick=(
        f"SELECT message_seq FROM {_D} WHERE subscription_id = %(sub)s"
        f" AND status = 'pending' AND NOT blocked AND {rules.due_sql(named)}"
        f" ORDER BY {rules.claim_order_sql('message_seq')} LIMIT %(n)s FOR UPDATE SKIP LOCKED"
    ),
    mark_delivered=(
        f"UPDATE {_D} SET {rules.deliver_sql(named)}, recipient_id = %(agent)s"
        " WHERE subscription_id = %(sub)s AND message_seq = ANY(CAST(%(seqs)s AS bigint[]))"
    ),
    claimed_rows=(
        f"SELECT {DELIVERY_COLUMNS} FROM {DELIVERY_FROM}"
        " WHERE d.subscription_id = %(sub)s AND d.message_seq = ANY(CAST(%(seqs)s AS bigint[]))"
    ),
    ack=(
        f"UPDATE {_D} SET {rules.ack_sql(named)} WHERE {_NAMED} AND recipient_id = %(agent)s"
        f" AND {rules.ACKABLE_SQL} RETURNING {delivery_returning()}"
    ),
    owners=(
        "SELECT k.send, k.sub, d.recipient_id, d.status"
        " FROM unnest(CAST(%(sends)s AS text[]), CAST(%(subs)s AS bigint[])) AS k(send, sub)"
        " JOIN subject_messages m ON m.message_id = k.send"
        f" JOIN {_D} d ON d.subscription_id = k.sub AND d.message_seq = m.seq"
    ),
    nack=_release(f"{_NAMED} AND recipient_id = %(agent)s"),
    release_held=_release(_HELD),
    release_stale=_release("delivered_at < %(before)s"),
    release_agent=_release("recipient_id = %(agent)s"),
    requeue=(
        f"UPDATE {_D} SET {rules.requeue_sql(_POOL)}, blocked = FALSE, forwarded = FALSE"
        f" WHERE {_NAMED} AND status = 'failed' RETURNING {delivery_returning()}"
    ),
    unblock=f"""
UPDATE {_D} SET blocked = FALSE
WHERE blocked AND (subscription_id, message_seq) IN (
    SELECT k.sub, (SELECT min(e.message_seq) FROM {_D} e
                   WHERE e.subscription_id = k.sub AND e.ordering_key = k.key AND e.{_UNFINISHED})
    FROM unnest(CAST(%(key_subs)s AS bigint[]), CAST(%(keys)s AS text[])) AS k(sub, key))
RETURNING subscription_id
""",
    release_lapsed=_release(
        f"(subscription_id, message_seq) IN (SELECT subscription_id, message_seq FROM {_D}"
        f" WHERE {rules.lapsed_sql(named)} ORDER BY ack_deadline LIMIT %(lim)s FOR UPDATE SKIP LOCKED)"
    ),
    expire=(
        f"UPDATE {_D} SET {rules.expire_sql(named)} WHERE (subscription_id, message_seq) IN"
        f" (SELECT subscription_id, message_seq FROM {_D} WHERE {rules.expired_sql(named)}"
        f" LIMIT %(lim)s FOR UPDATE SKIP LOCKED) RETURNING {delivery_returning()}"
    ),
    oldest_messages="SELECT seq, created_at FROM subject_messages ORDER BY seq LIMIT %s",
    purge_deliveries=(
        f"DELETE FROM {_D} WHERE subscription_id IN (SELECT subscription_id FROM subscriptions)"
        " AND message_seq < %s"
    ),
    purge_sends=(
        "DELETE FROM message_sends WHERE (sender_id, idempotency_key) IN"
        " (SELECT sender_id, idempotency_key FROM subject_messages WHERE seq < %s"
        " AND idempotency_key IS NOT NULL)"
    ),
    purge_messages="DELETE FROM subject_messages WHERE seq < %s",
    due_scheduled=(
        f"SELECT DISTINCT subscription_id FROM {_D} WHERE deliver_after IS NOT NULL AND status = 'pending'"
        " AND deliver_after > %(before)s AND deliver_after <= %(now)s"
    ),
    dead_to_forward=(
        "SELECT d.subscription_id, d.message_seq, s.name, s.dead_letter_subject, d.last_error, m.message_id,"
        " m.sender_id, m.message_type, m.payload, m.content_type, m.priority, m.correlation_id,"
        " m.conversation_id, m.headers, m.ordering_key, m.subject"
        f" FROM subscriptions s JOIN {_D} d ON d.subscription_id = s.subscription_id"
        " AND d.status = 'failed' AND NOT d.forwarded JOIN subject_messages m ON m.seq = d.message_seq"
        " WHERE s.dead_letter_subject IS NOT NULL LIMIT %s FOR UPDATE OF d SKIP LOCKED"
    ),
    mark_forwarded=f"UPDATE {_D} SET forwarded = TRUE WHERE {_PAIRS}",
    delivery=(
        f"SELECT {DELIVERY_COLUMNS} FROM {DELIVERY_FROM} WHERE m.message_id = %s AND d.subscription_id = %s"
    ),
    subject_message=f"SELECT {SUBJECT_MESSAGE_COLUMNS} FROM subject_messages m WHERE m.message_id = %s",
    first_seq_at="SELECT seq FROM subject_messages WHERE created_at >= %s ORDER BY created_at LIMIT 1",
    next_seq="SELECT coalesce(max(seq), 0) + 1 FROM subject_messages",
    skip_before=(
        f"UPDATE {_D} SET {rules.ack_sql(named)} WHERE subscription_id = %(sub)s AND message_seq < %(start)s"
        f" AND status = 'delivered' RETURNING {delivery_returning()}"
    ),
    drop_before=(
        f"DELETE FROM {_D} WHERE subscription_id = %(sub)s AND message_seq < %(start)s AND status = 'pending'"
        f" RETURNING {delivery_returning()}"
    ),
    clear_from=(
        f"DELETE FROM {_D} WHERE subscription_id = %(sub)s AND message_seq >= %(start)s"
        f" RETURNING {delivery_returning()}"
    ),
    replay_all="SELECT seq, subject, ordering_key FROM subject_messages WHERE seq >= %s ORDER BY seq",
    replay_range=(
        "SELECT seq, subject, ordering_key FROM subject_messages WHERE subject >= %s AND subject < %s"
        " AND seq >= %s"
    ),
    replay_insert=f"""
{_INSERT}
SELECT s.subscription_id, m.seq, m.priority, CASE WHEN s.ordering THEN m.ordering_key END, j.blocked,
       s.max_attempts, m.deliver_after, {_EXPIRES.format(exp="m.expires_at", base="CAST(%(now)s AS bigint)")}
FROM unnest(CAST(%(seqs)s AS bigint[]), CAST(%(blocked)s AS boolean[])) AS j(seq, blocked)
JOIN subject_messages m ON m.seq = j.seq
JOIN subscriptions s ON s.subscription_id = %(sub)s
""",
    census=f"""
SELECT s.name, x.pending, x.unacked, (SELECT created_at FROM subject_messages WHERE seq = x.oldest)
FROM (SELECT subscription_id, count(*) FILTER (WHERE status = 'pending') AS pending,
             count(*) AS unacked, min(message_seq) AS oldest
      FROM {_D} WHERE {_UNFINISHED} GROUP BY subscription_id) x
JOIN subscriptions s ON s.subscription_id = x.subscription_id
ORDER BY x.pending DESC, s.name LIMIT %s
""",
)
