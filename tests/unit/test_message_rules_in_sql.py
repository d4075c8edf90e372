"""The message rules that run as SQL (broker/domain/messages.py: due, dead letters and release,
lapse, expiry, retention, acks, requeue, claim order) do what they say, on SQLite and on
PostgreSQL, each fragment given the dialect's own style of parameter (as its statements are):
first case by case, then over every combination of the values a rule reads, against the rule as
its docstring states it (``*_rule`` below: the statement of the rule, not a second copy the broker
runs)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from broker.domain import messages as rules
from broker.models.messages import MessageStatus, TargetKind

from .sql_dialects import DIALECTS, Db, scratch

COLUMNS = (
    "seq BIGINT PRIMARY KEY, status TEXT, attempt INTEGER, max_attempts INTEGER, target_kind TEXT,"
    " recipient_id TEXT, target_capability TEXT, priority INTEGER, deliver_after BIGINT,"
    " expires_at BIGINT, delivered_at BIGINT, ack_deadline BIGINT, processed_at BIGINT,"
    " finished_at BIGINT, last_error TEXT"
)
NOW = 100
TIMES = (None, 99, 100, 101)


@pytest.fixture(params=DIALECTS)
def db(request) -> Iterator[Db]:
    yield from scratch(request, "a2a_messages", COLUMNS)


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


def row(seq: int, status: str = "pending", attempt: int = 0, **values: object) -> dict:
    base = {"deliver_after": None, "expires_at": None, "ack_deadline": None, "finished_at": None}
    return {"seq": seq, "status": status, "attempt": attempt, **base, **values}


# -- the rules as their docstrings state them ----------------------------------------------------


def due_rule(deliver_after: int | None, expires_at: int | None, now: int) -> bool:
    return (deliver_after is None or deliver_after <= now) and (expires_at is None or expires_at > now)


def lapsed_rule(status: MessageStatus, ack_deadline: int | None, now: int) -> bool:
    return status is MessageStatus.DELIVERED and ack_deadline is not None and ack_deadline <= now


def expired_rule(status: MessageStatus, expires_at: int | None, now: int) -> bool:
    unprocessed = status in (MessageStatus.PENDING, MessageStatus.DELIVERED)
    return expires_at is not None and unprocessed and expires_at <= now


def purgeable_rule(status: MessageStatus, finished_at: int | None, before: int) -> bool:
    final = status in (MessageStatus.PROCESSED, MessageStatus.EXPIRED)
    return final and finished_at is not None and finished_at < before


def ackable_rule(status: MessageStatus, attempt: int) -> bool:
    return status is MessageStatus.DELIVERED or (status is MessageStatus.PENDING and attempt > 0)


def release_rule(
    kind: TargetKind, recipient: str, attempt: int, max_attempts: int, reason: str, refund: bool, reject: bool
) -> tuple[str, int, str | None, str]:
    """(status, attempt, recipient, last_error) of a delivery handed back."""
    dead = reject or attempt - int(refund) >= max_attempts
    pooled = not dead and kind is TargetKind.ANYCAST
    note = f"{reason} (attempt {attempt} of {max_attempts})"[: rules.MAX_NOTE]
    return ("failed" if dead else "pending", attempt - int(refund), None if pooled else recipient, note)


# -- case by case ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("deliver_after", "expires_at", "due"),
    [(None, None, True), (100, None, True), (101, None, False), (None, 101, True), (None, 100, False)],
)
def test_a_copy_is_due_once_scheduled_time_came_and_before_it_expires(db, deliver_after, expires_at, due):
    rows = [row(1, deliver_after=deliver_after, expires_at=expires_at)]
    assert where(db, rules.due_sql(db.p), rows, now=100) == ({1} if due else set())


def test_a_delivery_lapses_at_its_ack_deadline(db):
    rows = [
        row(1, "delivered", 1, ack_deadline=100),
        row(2, "delivered", 1, ack_deadline=101),
        row(3, ack_deadline=50),
    ]
    assert where(db, rules.lapsed_sql(db.p), rows, now=100) == {1}


def test_only_copies_not_yet_processed_expire(db):
    rows = [
        row(1, expires_at=100),
        row(2, "delivered", 1, expires_at=90),
        row(3, "failed", 1, expires_at=90),
        row(4),
        row(5, expires_at=101),
    ]
    assert where(db, rules.expired_sql(db.p), rows, now=100) == {1, 2}


def test_retention_purges_processed_and_expired_copies_but_keeps_dead_letters(db):
    rows = [
        row(1, "processed", 1, finished_at=10),
        row(2, "expired", 0, finished_at=10),
        row(3, "processed", 1, finished_at=11),
        row(4, "failed", 1, finished_at=10),
        row(5),
    ]
    assert where(db, rules.purgeable_sql(db.p), rows, before=11) == {1, 2}


def test_an_ack_counts_for_a_delivery_and_for_one_handed_back_not_yet_redelivered(db):
    rows = [row(1, "delivered", 1), row(2, "pending", 1), row(3, "pending", 0), row(4, "processed", 1)]
    assert where(db, rules.ACKABLE_SQL, rows) == {1, 2}


def release(
    db: Db,
    kind: TargetKind,
    attempt: int,
    max_attempts: int,
    reason: str = "r",
    refund: bool = False,
    reject: bool = False,
    after: int | None = None,
    recipient: str = "bob",
) -> tuple:
    """Hand back one delivery with ``rules.release_sql``: (status, attempt, recipient, deliver_after,
    last_error, ack_deadline) as it leaves the row."""
    seq = db.execute("SELECT coalesce(max(seq), 0) + 1 FROM a2a_messages").fetchone()[0]
    columns = ["seq", "status", "attempt", "max_attempts", "target_kind", "recipient_id", "ack_deadline"]
    db.insert(
        columns,
        [
            dict(
                zip(columns, (seq, "delivered", attempt, max_attempts, kind.value, recipient, 7), strict=True)
            )
        ],
    )
    got = db.execute(
        f"UPDATE a2a_messages SET {rules.release_sql(db.p)} WHERE seq = {db.p('seq')}"
        " RETURNING status, attempt, recipient_id, deliver_after, last_error, ack_deadline",
        {"seq": seq, **rules.release_params(reason, refund, reject, after)},
    ).fetchone()
    return tuple(got)


def test_a_delivery_handed_back_is_redelivered_until_its_last_attempt(db):
    got = release(db, TargetKind.DIRECT, 2, 3, "nacked", after=50)
    assert got == ("pending", 2, "bob", 50, "nacked (attempt 2 of 3)", None)


def test_the_last_attempt_handed_back_is_a_dead_letter_that_keeps_its_recipient(db):
    assert release(db, TargetKind.ANYCAST, 3, 3)[:3] == ("failed", 3, "bob")


def test_a_rejected_delivery_is_a_dead_letter_at_once(db):
    assert release(db, TargetKind.DIRECT, 1, 5, "", reject=True)[0] == "failed"


def test_a_refunded_attempt_is_given_back_and_never_the_last(db):
    got = release(db, TargetKind.DIRECT, 3, 3, refund=True)
    assert (got[0], got[1], got[4]) == ("pending", 2, "r (attempt 3 of 3)")


def test_an_anycast_copy_handed_back_returns_to_its_capability_pool(db):
    assert release(db, TargetKind.ANYCAST, 1, 3)[:3] == ("pending", 1, None)
    assert release(db, TargetKind.BROADCAST, 1, 3)[2] == "bob"


def test_the_release_note_is_cut_to_the_column_limit(db):
    assert len(release(db, TargetKind.DIRECT, 1, 2, "x" * 5000)[4]) == rules.MAX_NOTE


# -- over every combination ------------------------------------------------------------------


def test_due_in_sql_is_the_due_rule(db):
    rows = grid()
    expected = {r["seq"] for r in rows if due_rule(r["deliver_after"], r["expires_at"], NOW)}
    assert where(db, rules.due_sql(db.p), rows, now=NOW) == expected


def test_lapsed_in_sql_is_the_lapse_rule(db):
    rows = grid()
    expected = {r["seq"] for r in rows if lapsed_rule(MessageStatus(r["status"]), r["ack_deadline"], NOW)}
    assert where(db, rules.lapsed_sql(db.p), rows, now=NOW) == expected


def test_expired_in_sql_is_the_expiry_rule(db):
    rows = grid()
    expected = {r["seq"] for r in rows if expired_rule(MessageStatus(r["status"]), r["expires_at"], NOW)}
    assert where(db, rules.expired_sql(db.p), rows, now=NOW) == expected


def test_purgeable_in_sql_is_the_retention_rule(db):
    rows = grid()
    expected = {r["seq"] for r in rows if purgeable_rule(MessageStatus(r["status"]), r["finished_at"], NOW)}
    assert where(db, rules.purgeable_sql(db.p), rows, before=NOW) == expected


def test_ackable_in_sql_is_the_ack_rule(db):
    rows = grid()
    expected = {r["seq"] for r in rows if ackable_rule(MessageStatus(r["status"]), r["attempt"])}
    assert where(db, rules.ACKABLE_SQL, rows) == expected


def test_claim_order_in_sql_is_the_claim_order(db):
    rows = [(seq, prio) for seq, prio in zip(range(1, 40), itertools.cycle((0, 5, 10, 5)), strict=False)]
    db.insert(["seq", "priority"], [{"seq": seq, "priority": prio} for seq, prio in rows])
    in_sql = [r[0] for r in db.execute(f"SELECT seq FROM a2a_messages ORDER BY {rules.CLAIM_ORDER_SQL}")]
    in_python = sorted((rules.Candidate(seq, prio, False) for seq, prio in rows), key=rules.claim_key)
    assert in_sql == [c.seq for c in in_python]


CASES = list(
    itertools.product(
        TargetKind, ("bob", None), (1, 2, 3), (False, True), (False, True), (None, 150), ("why", "x" * 3000)
    )
)


def test_release_in_sql_is_the_release_rule(db):
    for kind, recipient, attempt, refund, reject, after, reason in CASES:
        got = release(db, kind, attempt, 3, reason, refund, reject, after, recipient or "holder")
        status, att, rcpt, note = release_rule(
            kind, recipient or "holder", attempt, 3, reason, refund, reject
        )
        assert got == (status, att, rcpt, after, note, None)


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
    want = [
        (i, "pending", 0, None if k is TargetKind.ANYCAST else "bob", None) for i, k in enumerate(TargetKind)
    ]
    assert sorted(tuple(r) for r in got) == want
