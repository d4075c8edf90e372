"""Each message rule that storage runs set-based in SQL agrees with its Python statement in
broker/domain/messages.py, over every combination of the values it reads: on SQLite and on
PostgreSQL, each fragment given the dialect's own style of parameter (as its statements are)."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from broker.domain import messages as rules
from broker.models.messages import MessageStatus, TargetKind
from broker.storage.postgres import queries as pg
from broker.storage.sqlite import queries as lite

COLUMNS = (
    "seq BIGINT PRIMARY KEY, status TEXT, attempt INTEGER, max_attempts INTEGER, target_kind TEXT,"
    " recipient_id TEXT, target_capability TEXT, priority INTEGER, deliver_after BIGINT,"
    " expires_at BIGINT, delivered_at BIGINT, ack_deadline BIGINT, processed_at BIGINT,"
    " finished_at BIGINT, last_error TEXT"
)
NOW = 100
TIMES = (None, 99, 100, 101)


@dataclass
class Db:
    """A table shaped as a2a_messages (the columns the rules read), and the dialect's parameters."""

    conn: Any
    p: Callable[[str], str]  # the dialect's named parameter

    def execute(self, sql: str, params: Any = ()) -> Any:
        return self.conn.execute(sql, params)

    def insert(self, columns: list[str], rows: list[dict[str, Any]]) -> None:
        marks = ", ".join(self.p(c) for c in columns)
        sql = f"INSERT INTO a2a_messages ({', '.join(columns)}) VALUES ({marks})"
        if isinstance(self.conn, sqlite3.Connection):
            self.conn.executemany(sql, rows)
        else:
            with self.conn.cursor() as cur:
                cur.executemany(sql, rows)


@pytest.fixture(params=["sqlite", "postgres"])
def db(request) -> Iterator[Db]:
    if request.param == "sqlite":
        conn = sqlite3.connect(":memory:")
        conn.execute(f"CREATE TABLE a2a_messages ({COLUMNS})")
        yield Db(conn, lite.named)
        conn.close()
        return
    import psycopg

    with psycopg.connect(request.getfixturevalue("pg_url"), autocommit=True) as conn:
        conn.execute(f"CREATE TEMP TABLE a2a_messages ({COLUMNS})".encode())  # shadows the real one
        yield Db(conn, pg.named)


def where(db: Db, fragment: str, rows: list[dict], **params: object) -> set[int]:
    db.insert(
        ["seq", "status", "attempt", "deliver_after", "expires_at", "ack_deadline", "finished_at"], rows
    )
    return {r[0] for r in db.execute(f"SELECT seq FROM a2a_messages WHERE {fragment}", params)}


def grid() -> list[dict]:
    rows = []
    for i, (status, attempt, t1, t2) in enumerate(itertools.product(MessageStatus, (0, 1), TIMES, TIMES)):
        rows.append(
            {
                "seq": i,
                "status": status.value,
                "attempt": attempt,
                "deliver_after": t1,
                "expires_at": t2,
                "ack_deadline": t1,
                "finished_at": t2,
            }
        )
    return rows


def test_due_in_sql_is_the_due_rule(db):
    rows = grid()
    expected = {r["seq"] for r in rows if rules.is_due(r["deliver_after"], r["expires_at"], NOW)}
    assert where(db, rules.due_sql(db.p), rows, now=NOW) == expected


def test_lapsed_in_sql_is_the_lapse_rule(db):
    rows = grid()
    expected = {r["seq"] for r in rows if rules.is_lapsed(MessageStatus(r["status"]), r["ack_deadline"], NOW)}
    assert where(db, rules.lapsed_sql(db.p), rows, now=NOW) == expected


def test_expired_in_sql_is_the_expiry_rule(db):
    rows = grid()
    expected = {r["seq"] for r in rows if rules.is_expired(MessageStatus(r["status"]), r["expires_at"], NOW)}
    assert where(db, rules.expired_sql(db.p), rows, now=NOW) == expected


def test_purgeable_in_sql_is_the_retention_rule(db):
    rows = grid()
    expected = {
        r["seq"] for r in rows if rules.is_purgeable(MessageStatus(r["status"]), r["finished_at"], NOW)
    }
    assert where(db, rules.purgeable_sql(db.p), rows, before=NOW) == expected


def test_ackable_in_sql_is_the_ack_rule(db):
    rows = grid()
    expected = {r["seq"] for r in rows if rules.is_ackable(MessageStatus(r["status"]), r["attempt"])}
    assert where(db, rules.ACKABLE_SQL, rows) == expected


def test_claim_order_in_sql_is_the_claim_order(db):
    rows = [(seq, prio) for seq, prio in zip(range(1, 40), itertools.cycle((0, 5, 10, 5)), strict=False)]
    db.insert(["seq", "priority"], [{"seq": seq, "priority": prio} for seq, prio in rows])
    in_sql = [r[0] for r in db.execute(f"SELECT seq FROM a2a_messages ORDER BY {rules.CLAIM_ORDER_SQL}")]
    assert in_sql == [seq for seq, _ in sorted(rows, key=lambda r: rules.claim_order(r[1], r[0]))]


CASES = list(
    itertools.product(
        TargetKind, ("bob", None), (1, 2, 3), (False, True), (False, True), (None, 150), ("why", "x" * 3000)
    )
)


def test_release_in_sql_is_the_release_rule(db):
    columns = ["seq", "status", "attempt", "max_attempts", "target_kind", "recipient_id", "ack_deadline"]
    rows = []
    for i, (kind, recipient, attempt, _, _, _, _) in enumerate(CASES):
        rows.append(
            dict(
                zip(columns, (i, "delivered", attempt, 3, kind.value, recipient or "holder", 7), strict=True)
            )
        )
    db.insert(columns, rows)
    for i, (kind, recipient, attempt, refund, reject, after, reason) in enumerate(CASES):
        recipient = recipient or "holder"
        got = db.execute(
            f"UPDATE a2a_messages SET {rules.release_sql(db.p)} WHERE seq = {db.p('seq')}"
            " RETURNING status, attempt, recipient_id, deliver_after, last_error, ack_deadline",
            {"seq": i, **rules.release_params(reason, refund, reject, after)},
        ).fetchone()
        want = rules.release(
            target_kind=kind,
            recipient_id=recipient,
            attempt=attempt,
            max_attempts=3,
            reason=reason,
            refund=refund,
            reject=reject,
            deliver_after=after,
        )
        assert tuple(got) == (
            want.status.value,
            want.attempt,
            want.recipient_id,
            want.deliver_after,
            want.last_error,
            None,
        )


def test_requeue_in_sql_starts_a_dead_letter_afresh(db):
    columns = ["seq", "status", "attempt", "target_kind", "recipient_id", "deliver_after"]
    db.insert(
        columns,
        [
            dict(zip(columns, (i, "failed", 3, k.value, "bob", 5), strict=True))
            for i, k in enumerate(TargetKind)
        ],
    )
    got = db.execute(
        f"UPDATE a2a_messages SET {rules.REQUEUE_SQL}"
        " RETURNING seq, status, attempt, recipient_id, deliver_after"
    ).fetchall()
    want = [(i, "pending", 0, rules.recipient_when_pending(k, "bob"), None) for i, k in enumerate(TargetKind)]
    assert sorted(tuple(r) for r in got) == want
