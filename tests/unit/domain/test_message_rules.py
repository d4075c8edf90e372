"""The message rules that run in Python (broker/domain/messages.py), without a database. The rules
that run as SQL (due, dead letters, release, lapse, expiry, retention, acks) are run on both
dialects by tests/unit/test_message_rules_in_sql.py."""

from __future__ import annotations

from broker.domain import messages as rules
from broker.errors import FailedPrecondition, NotFound, PermissionDenied


def test_claims_take_the_highest_priority_then_the_oldest_across_own_and_anycast_copies():
    direct = [(1, 5), (4, 5)]  # (seq, priority)
    anycast = [[(2, 9), (6, 5)], [(3, 5)]]
    assert rules.pick_claims(direct, anycast, 3) == ([1], [2, 3])
    assert rules.pick_claims(direct, anycast, 10) == ([1, 4], [2, 3, 6])
    assert rules.pick_claims([], [], 5) == ([], [])
    copies = [rules.Candidate(3, 5, False), rules.Candidate(1, 9, True), rules.Candidate(1, 5, False)]
    assert sorted(copies, key=rules.claim_key) == [copies[1], copies[2], copies[0]]


def test_the_claim_order_is_declared_once_and_read_as_sql_too():
    assert rules.CLAIM_ORDER_SQL == "priority DESC, seq"


def test_each_delivery_counts_one_attempt():
    assert rules.delivered_attempt(0) == 1


def test_a_pending_copy_waits_for_its_recipient_else_for_its_capability():
    assert rules.audience("bob", "gpu") == rules.Audience("bob", None)
    assert rules.audience(None, "gpu") == rules.Audience(None, "gpu")


def test_a_nack_records_the_recipients_reason_else_what_it_did():
    assert rules.nack_reason("busy", reject=True) == "busy"
    assert rules.nack_reason("", reject=True) == "rejected by the recipient"
    assert rules.nack_reason("", reject=False) == "nacked by the recipient"


def test_a_nack_delay_defers_redelivery_but_a_reject_never_is_redelivered():
    assert rules.redeliver_after(100, 50, reject=False) == 150
    assert rules.redeliver_after(100, 0, reject=False) is None
    assert rules.redeliver_after(100, 50, reject=True) is None


def test_only_the_recipient_may_ack_a_known_copy():
    assert rules.ack_refusal("m", True, "bob", "bob") is None
    assert rules.ack_refusal("m", True, None, "bob") is None  # an anycast copy in the pool
    assert isinstance(rules.ack_refusal("m", False, None, "bob"), NotFound)
    err = rules.ack_refusal("m", True, "eve", "bob")
    assert isinstance(err, PermissionDenied) and "another agent" in str(err)


def test_only_a_dead_letter_may_be_requeued():
    assert rules.requeue_refusal("m", "failed") is None
    assert isinstance(rules.requeue_refusal("m", None), NotFound)
    err = rules.requeue_refusal("m", "pending")
    assert isinstance(err, FailedPrecondition) and "is pending, not failed" in str(err)
