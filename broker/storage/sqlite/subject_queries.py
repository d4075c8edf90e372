"""SQLite's statements for topics (``sql/queries.py``'s ``SubjectQueries`` says what each is):
deliveries named by JSON arrays (``json_each``), ``INDEXED BY`` on the hot ones (the plan tests
pin them). What happens to a delivery is the messages' rules (``broker.domain.messages``), the
same fragments as for ``a2a_messages``, over the same column names.
"""

from __future__ import annotations

import json
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
# Deliveries named by [subject message id, subscription] pairs (:ids), or with their attempt (:held).
_NAMED = (
    "(subscription_id, message_seq) IN (SELECT j.value ->> 1, m.seq FROM json_each(:ids) j"
    " JOIN subject_messages m ON m.message_id = j.value ->> 0)"
)
_HELD = (
    "(subscription_id, message_seq, attempt) IN (SELECT j.value ->> 1, m.seq, j.value ->> 2"
    " FROM json_each(:held) j JOIN subject_messages m ON m.message_id = j.value ->> 0)"
)
_PAIRS = "(subscription_id, message_seq) IN (SELECT j.value ->> 0, j.value ->> 1 FROM json_each(:pairs) j)"


def _release(where: str) -> str:
    """Hand deliveries back (``rules.release_sql``): back to their subscription, or dead letters."""
    return (
        f"UPDATE {_D} SET {rules.release_sql(named, _POOL)} WHERE status = 'delivered' AND {where}"
        f" RETURNING {delivery_returning('attempt + :refund')}"
    )


def _pack_deliveries(ids: list[tuple[str, int]]) -> dict[str, Any]:
    return {"ids": json.dumps(ids)}


def _pack_held(held: list[tuple[str, int, int]]) -> dict[str, Any]:
    return {"held": json.dumps(held)}


def _pack_keys(keys: list[tuple[int, str]]) -> dict[str, Any]:
    return {"keys": json.dumps(keys)}


def _pack_replay(rows: list[tuple[int, bool]]) -> dict[str, Any]:
    return {"rows": json.dumps([[seq, int(blocked)] for seq, blocked in rows])}


def _pack_seqs(pairs: list[tuple[int, int]]) -> dict[str, Any]:
    return {"pairs": json.dumps(pairs)}


# A delivery's expiry: the message's, or the subscription's retention from :base (when it became
# deliverable there), whichever comes first.
_EXPIRES = (
    "CASE WHEN s.retention_us IS NULL THEN {exp} WHEN {exp} IS NULL THEN {base} + s.retention_us"
    " ELSE min({exp}, {base} + s.retention_us) END"
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
        " VALUES (:name, :filter, :ack, :max, :retention, :ordering, :dls, :by, :now)"
        " RETURNING subscription_id"
    ),
    subscription=f"SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE name = ?",
    subscription_name="SELECT name FROM subscriptions WHERE subscription_id = ?",
    subscriptions_after=(
        f"SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE name > ? ORDER BY name LIMIT ?"
    ),
    unacked_figures=(
        f"SELECT status, count(*), min(message_seq) FROM {_D} INDEXED BY idx_deliveries_unacked"
        f" WHERE subscription_id = ? AND {_UNFINISHED} GROUP BY status"
    ),
    dead_count=f"SELECT count(*) FROM {_D} WHERE subscription_id = ? AND status = 'failed'",
    sent_at="SELECT created_at FROM subject_messages WHERE seq = ?",
    delete_deliveries_of=f"DELETE FROM {_D} WHERE subscription_id = ?",
    delete_subscription="DELETE FROM subscriptions WHERE subscription_id = ?",
    insert_message=(
        "INSERT INTO subject_messages (message_id, subject, sender_id, message_type, payload, content_type,"
        " priority, correlation_id, conversation_id, headers, idempotency_key, ordering_key, created_at,"
        " deliver_after, expires_at)"
        " VALUES (:id, :subject, :sender, :type, :payload, :ctype, :prio, :corr, :conv, :headers, :key,"
        " :okey, :now, :after, :expires) RETURNING seq"
    ),
    fan_out=f"""
{_INSERT}
SELECT s.subscription_id, :seq, :prio, CASE WHEN s.ordering THEN :okey END,
       s.ordering AND :okey IS NOT NULL AND EXISTS (
           SELECT 1 FROM {_D} e WHERE e.subscription_id = s.subscription_id
           AND e.ordering_key = :okey AND e.{_UNFINISHED}),
       s.max_attempts, :after, {_EXPIRES.format(exp=":expires", base=":base")}
FROM subscriptions s WHERE s.subscription_id IN (SELECT value FROM json_each(:subs))
""",
    pick=(
        f"SELECT message_seq FROM {_D} INDEXED BY idx_deliveries_next WHERE subscription_id = :sub"
        f" AND status = 'pending' AND NOT blocked AND {rules.due_sql(named)}"
        f" ORDER BY {rules.claim_order_sql('message_seq')} LIMIT :n"
    ),
    mark_delivered=(
        f"UPDATE {_D} SET {rules.deliver_sql(named)}, recipient_id = :agent"
        " WHERE subscription_id = :sub AND message_seq IN (SELECT value FROM json_each(:seqs))"
    ),
    claimed_rows=(
        f"SELECT {DELIVERY_COLUMNS} FROM {DELIVERY_FROM}"
        " WHERE d.subscription_id = :sub AND d.message_seq IN (SELECT value FROM json_each(:seqs))"
    ),
    ack=(
        f"UPDATE {_D} SET {rules.ack_sql(named)} WHERE {_NAMED} AND recipient_id = :agent"
        f" AND {rules.ACKABLE_SQL} RETURNING {delivery_returning()}"
    ),
    owners=(
        "SELECT j.value ->> 0, j.value ->> 1, d.recipient_id, d.status FROM json_each(:ids) j"
        " JOIN subject_messages m ON m.message_id = j.value ->> 0"
        f" JOIN {_D} d ON d.subscription_id = j.value ->> 1 AND d.message_seq = m.seq"
    ),
    nack=_release(f"{_NAMED} AND recipient_id = :agent"),
    release_held=_release(_HELD),
    release_stale=_release("delivered_at < :before"),
    release_agent=_release(
        f"(subscription_id, message_seq) IN (SELECT subscription_id, message_seq FROM {_D}"
        " INDEXED BY idx_deliveries_delivered_to WHERE recipient_id = :agent AND status = 'delivered')"
    ),
    requeue=(
        f"UPDATE {_D} SET {rules.requeue_sql(_POOL)}, blocked = FALSE, forwarded = FALSE"
        f" WHERE {_NAMED} AND status = 'failed' RETURNING {delivery_returning()}"
    ),
    unblock=f"""
UPDATE {_D} SET blocked = FALSE
WHERE blocked AND (subscription_id, message_seq) IN (
    SELECT k.value ->> 0, (SELECT min(e.message_seq) FROM {_D} e
                           WHERE e.subscription_id = k.value ->> 0 AND e.ordering_key = k.value ->> 1
                           AND e.{_UNFINISHED})
    FROM json_each(:keys) k)
RETURNING subscription_id
""",
    release_lapsed=_release(
        f"(subscription_id, message_seq) IN (SELECT subscription_id, message_seq FROM {_D}"
        f" WHERE {rules.lapsed_sql(named)} ORDER BY ack_deadline LIMIT :lim)"
    ),
    expire=(
        f"UPDATE {_D} SET {rules.expire_sql(named)} WHERE (subscription_id, message_seq) IN"
        f" (SELECT subscription_id, message_seq FROM {_D} WHERE {rules.expired_sql(named)} LIMIT :lim)"
        f" RETURNING {delivery_returning()}"
    ),
    oldest_messages="SELECT seq, created_at FROM subject_messages ORDER BY seq LIMIT ?",
    purge_deliveries=(
        f"DELETE FROM {_D} WHERE subscription_id IN (SELECT subscription_id FROM subscriptions)"
        " AND message_seq < ?"
    ),
    purge_sends=(
        "DELETE FROM message_sends WHERE (sender_id, idempotency_key) IN"
        " (SELECT sender_id, idempotency_key FROM subject_messages WHERE seq < ?"
        " AND idempotency_key IS NOT NULL)"
    ),
    purge_messages="DELETE FROM subject_messages WHERE seq < ?",
    due_scheduled=(
        f"SELECT DISTINCT subscription_id FROM {_D} WHERE deliver_after IS NOT NULL AND status = 'pending'"
        " AND deliver_after > :before AND deliver_after <= :now"
    ),
    dead_to_forward=(
        "SELECT d.subscription_id, d.message_seq, s.name, s.dead_letter_subject, d.last_error, m.message_id,"
        " m.sender_id, m.message_type, m.payload, m.content_type, m.priority, m.correlation_id,"
        " m.conversation_id, m.headers, m.ordering_key, m.subject"
        f" FROM subscriptions s JOIN {_D} d ON d.subscription_id = s.subscription_id"
        " AND d.status = 'failed' AND NOT d.forwarded JOIN subject_messages m ON m.seq = d.message_seq"
        " WHERE s.dead_letter_subject IS NOT NULL LIMIT ?"
    ),
    mark_forwarded=f"UPDATE {_D} SET forwarded = TRUE WHERE {_PAIRS}",
    delivery=(
        f"SELECT {DELIVERY_COLUMNS} FROM {DELIVERY_FROM} WHERE m.message_id = ? AND d.subscription_id = ?"
    ),
    subject_message=f"SELECT {SUBJECT_MESSAGE_COLUMNS} FROM subject_messages m WHERE m.message_id = ?",
    first_seq_at="SELECT seq FROM subject_messages WHERE created_at >= ? ORDER BY created_at LIMIT 1",
    next_seq="SELECT coalesce(max(seq), 0) + 1 FROM subject_messages",
    skip_before=(
        f"UPDATE {_D} SET {rules.ack_sql(named)} WHERE subscription_id = :sub AND message_seq < :start"
        f" AND status = 'delivered' RETURNING {delivery_returning()}"
    ),
    drop_before=(
        f"DELETE FROM {_D} WHERE subscription_id = :sub AND message_seq < :start AND status = 'pending'"
        f" RETURNING {delivery_returning()}"
    ),
    clear_from=(
        f"DELETE FROM {_D} WHERE subscription_id = :sub AND message_seq >= :start"
        f" RETURNING {delivery_returning()}"
    ),
    replay_all="SELECT seq, subject, ordering_key FROM subject_messages WHERE seq >= ? ORDER BY seq",
    replay_range=(
        "SELECT seq, subject, ordering_key FROM subject_messages INDEXED BY idx_subject_messages_subject"
        " WHERE subject >= ? AND subject < ? AND seq >= ?"
    ),
    replay_insert=f"""
{_INSERT}
SELECT s.subscription_id, m.seq, m.priority, CASE WHEN s.ordering THEN m.ordering_key END, j.value ->> 1,
       s.max_attempts, m.deliver_after, {_EXPIRES.format(exp="m.expires_at", base=":now")}
FROM json_each(:rows) j JOIN subject_messages m ON m.seq = j.value ->> 0
JOIN subscriptions s ON s.subscription_id = :sub
""",
    census=f"""
SELECT s.name, x.pending, x.unacked, (SELECT created_at FROM subject_messages WHERE seq = x.oldest)
FROM (SELECT subscription_id, sum(CASE WHEN status = 'pending' THEN 1 ELSE 0 END) AS pending,
             count(*) AS unacked, min(message_seq) AS oldest
      FROM {_D} WHERE {_UNFINISHED} GROUP BY subscription_id) x
JOIN subscriptions s ON s.subscription_id = x.subscription_id
ORDER BY x.pending DESC, s.name LIMIT ?
""",
)
