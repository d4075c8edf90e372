"""Every hot messaging query is served by an index (EXPLAIN QUERY PLAN on the real schema)."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from broker.models.messages import MessageFilter
from broker.storage.sql.message_rows import list_messages_sql
from broker.storage.sqlite import messages
from broker.storage.sqlite.migrate import migrate
from broker.storage.sqlite.queries import SQLITE

ARGS = {
    "agent": "a1",
    "cap": "gpu",
    "now": 1_000,
    "n": 100,
    "deadline": 2_000,
    "lim": 100,
    "before": 500,
    "seqs": "[1, 2]",
    "ids": '["m1", "m2"]',
    "held": '[["m1", 1]]',
    "reason": "r",
    "refund": 0,
    "reject": 0,
    "deliver_after": None,
}

# (query, the index that must serve it)
HOT = {
    "next message for an agent": (SQLITE.messages.next_direct, "idx_messages_next"),
    "next anycast message for a capability": (SQLITE.messages.next_anycast, "idx_messages_anycast_next"),
    "claim (the next messages, packed)": (messages.PICK_DIRECT, "idx_messages_next"),
    "ack-deadline scan": (messages.LAPSED, "idx_messages_ack_deadline"),
    "ack-deadline release": (messages._RELEASE_LAPSED, "idx_messages_ack_deadline"),
    "expiry scan": (messages.EXPIRING, "idx_messages_expiry"),
    "expiry update": (messages._EXPIRE, "idx_messages_expiry"),
    "retention purge": (messages.PURGEABLE, "idx_messages_retention"),
    "release an agent's deliveries": (SQLITE.messages.release_agent, "idx_messages_delivered_to"),
    "ack by ids": (messages._ACK, "sqlite_autoindex_a2a_messages_1"),
    "ackable by ids": (messages.ACK_PICK, "sqlite_autoindex_a2a_messages_1"),
    "nack by ids": (SQLITE.messages.nack, "sqlite_autoindex_a2a_messages_1"),
    "release a stream's deliveries": (SQLITE.messages.release_held, "sqlite_autoindex_a2a_messages_1"),
    "scheduled messages come due": (SQLITE.messages.due_scheduled, "idx_messages_scheduled"),
}


@pytest.fixture(scope="module")
def conn(tmp_path_factory: pytest.TempPathFactory) -> sqlite3.Connection:
    path = Path(tmp_path_factory.mktemp("plans")) / "plans.db"
    migrate(str(path))
    c = sqlite3.connect(path)
    # Some rows, so the plans are not those of an empty table. (The broker runs no ANALYZE,
    # so the planner decides from the schema alone, as it does here.)
    c.execute(
        "INSERT INTO agents (agent_id, name, max_concurrent_tasks, registered_at, updated_at,"
        " last_heartbeat_at) VALUES ('a1', 'a1', 1, 0, 0, 0)"
    )
    c.executemany(
        "INSERT INTO a2a_messages (message_id, send_id, sender_id, recipient_id, target_kind, payload,"
        " created_at, expires_at) VALUES (?, ?, 'a1', 'a1', 'direct', x'', 0, ?)",
        [(f"m{i}", f"m{i}", i if i % 3 else None) for i in range(2000)],
    )
    c.commit()
    return c


def plan(conn: sqlite3.Connection, sql: str) -> list[str]:
    names = set(re.findall(r":(\w+)", sql))
    return [r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql, {k: ARGS[k] for k in names})]


@pytest.mark.parametrize("what", list(HOT))
def test_hot_query_uses_its_index(conn: sqlite3.Connection, what: str) -> None:
    sql, index = HOT[what]
    steps = plan(conn, sql)
    text = "\n".join(steps)
    assert f"INDEX {index}" in text, f"{what}: {text}"
    # No full scan of the table and no sort: the index gives the rows in order.
    assert not any(re.match(r"SCAN a2a_messages(?! USING)", s) for s in steps), f"{what}: {text}"
    assert "TEMP B-TREE FOR ORDER BY" not in text, f"{what}: {text}"


@pytest.mark.parametrize(
    ("flt", "index"),
    [
        (MessageFilter(message_type="invoice"), "idx_messages_type"),
        (MessageFilter(conversation_id="c1"), "idx_messages_conversation"),
        (MessageFilter(sender_id="a1"), "idx_messages_sender"),
    ],
)
def test_message_list_filters_use_indexes(conn: sqlite3.Connection, flt: MessageFilter, index: str) -> None:
    sql, args = list_messages_sql("?", flt)
    text = "\n".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql, args))
    assert f"INDEX {index}" in text and "TEMP B-TREE FOR ORDER BY" not in text, text


@pytest.mark.parametrize(
    ("flt", "index"),
    [
        (MessageFilter(newest_first=True, after_seq=1000), "INTEGER PRIMARY KEY (rowid<?)"),
        (MessageFilter(newest_first=True, recipient_id="a1"), "INDEX idx_messages_recipient"),
        (MessageFilter(newest_first=True, sender_id="a1", after_seq=9), "INDEX idx_messages_sender"),
        (MessageFilter(newest_first=True, conversation_id="c1"), "INDEX idx_messages_conversation"),
    ],
)
def test_newest_first_message_pages_need_no_sort(
    conn: sqlite3.Connection, flt: MessageFilter, index: str
) -> None:
    sql, args = list_messages_sql("?", flt)
    text = "\n".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql, args))
    assert index in text and "TEMP B-TREE FOR ORDER BY" not in text, text


@pytest.mark.parametrize(
    ("sql", "args"),
    [
        (SQLITE.messages.conversations, ("", 100)),
        (SQLITE.messages.conversations_of, ("", "a1", "a1", 100)),
        (SQLITE.messages.conversation_stats, ("c1",)),
        (SQLITE.messages.conversation_people, ("c1",)),
    ],
    ids=["conversations", "a participant's conversations", "a conversation's counts", "its participants"],
)
def test_conversation_reads_use_indexes(conn: sqlite3.Connection, sql: str, args: tuple) -> None:
    steps = [r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql, args)]
    text = "\n".join(steps)
    assert "INDEX" in text, text
    assert not any(re.match(r"SCAN a2a_messages(?! USING)", s) for s in steps), text
