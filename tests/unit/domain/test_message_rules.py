"""The message rules (broker/domain/messages.py), without a database."""

from __future__ import annotations

import pytest

from broker.domain import messages as rules
from broker.errors import FailedPrecondition, NotFound, PermissionDenied
from broker.models.messages import MessageStatus as S
from broker.models.messages import TargetKind as K


@pytest.mark.parametrize(
    ("deliver_after", "expires_at", "due"),
    [(None, None, True), (100, None, True), (101, None, False), (None, 101, True), (None, 100, False)],
)
def test_a_copy_is_due_once_scheduled_time_came_and_before_it_expires(deliver_after, expires_at, due):
    assert rules.is_due(deliver_after, expires_at, now=100) is due


def test_claims_take_the_highest_priority_then_the_oldest_across_own_and_anycast_copies():
    direct = [(1, 5), (4, 5)]  # (seq, priority)
    anycast = [[(2, 9), (6, 5)], [(3, 5)]]
    assert rules.pick_claims(direct, anycast, 3) == ([1], [2, 3])
    assert rules.pick_claims(direct, anycast, 10) == ([1, 4], [2, 3, 6])
    assert rules.pick_claims([], [], 5) == ([], [])
    assert sorted([(5, 3), (9, 1), (5, 1)], key=lambda r: rules.claim_order(*r)) == [(9, 1), (5, 1), (5, 3)]


def test_each_delivery_counts_one_attempt():
    assert rules.delivered_attempt(0) == 1


def test_a_pending_copy_waits_for_its_recipient_else_for_its_capability():
    assert rules.audience("bob", "gpu") == rules.Audience("bob", None)
    assert rules.audience(None, "gpu") == rules.Audience(None, "gpu")


def test_a_delivery_handed_back_is_redelivered_until_its_last_attempt():
    out = rules.release(
        target_kind=K.DIRECT, recipient_id="bob", attempt=2, max_attempts=3, reason="nacked", deliver_after=50
    )
    assert out == rules.Released(S.PENDING, 2, "bob", 50, "nacked (attempt 2 of 3)")


def test_the_last_attempt_handed_back_is_a_dead_letter_that_keeps_its_recipient():
    out = rules.release(target_kind=K.ANYCAST, recipient_id="bob", attempt=3, max_attempts=3, reason="r")
    assert (out.status, out.recipient_id) == (S.FAILED, "bob")


def test_a_rejected_delivery_is_a_dead_letter_at_once():
    assert rules.is_dead_letter(1, 5, reject=True, refund=False)
    assert (
        rules.release(
            target_kind=K.DIRECT, recipient_id="b", attempt=1, max_attempts=5, reason="", reject=True
        ).status
        is S.FAILED
    )


def test_a_refunded_attempt_is_given_back_and_never_the_last():
    assert not rules.is_dead_letter(3, 3, reject=False, refund=True)
    out = rules.release(
        target_kind=K.DIRECT, recipient_id="b", attempt=3, max_attempts=3, reason="r", refund=True
    )
    assert (out.status, out.attempt, out.last_error) == (S.PENDING, 2, "r (attempt 3 of 3)")


def test_an_anycast_copy_handed_back_returns_to_its_capability_pool():
    out = rules.release(target_kind=K.ANYCAST, recipient_id="bob", attempt=1, max_attempts=3, reason="r")
    assert (out.status, out.recipient_id) == (S.PENDING, None)
    assert rules.recipient_when_pending(K.BROADCAST, "bob") == "bob"


def test_the_release_note_is_cut_to_the_column_limit():
    assert len(rules.release_note("x" * 5000, 1, 2)) == rules.MAX_NOTE


def test_a_nack_records_the_recipients_reason_else_what_it_did():
    assert rules.nack_reason("busy", reject=True) == "busy"
    assert rules.nack_reason("", reject=True) == "rejected by the recipient"
    assert rules.nack_reason("", reject=False) == "nacked by the recipient"


def test_a_nack_delay_defers_redelivery_but_a_reject_never_is_redelivered():
    assert rules.redeliver_after(100, 50, reject=False) == 150
    assert rules.redeliver_after(100, 0, reject=False) is None
    assert rules.redeliver_after(100, 50, reject=True) is None


def test_a_delivery_lapses_at_its_ack_deadline():
    assert rules.is_lapsed(S.DELIVERED, 100, 100)
    assert not rules.is_lapsed(S.DELIVERED, 101, 100)
    assert not rules.is_lapsed(S.PENDING, 50, 100)


def test_only_copies_not_yet_processed_expire():
    assert rules.is_expired(S.PENDING, 100, 100)
    assert rules.is_expired(S.DELIVERED, 90, 100)
    assert not rules.is_expired(S.FAILED, 90, 100)
    assert not rules.is_expired(S.PENDING, None, 100)
    assert not rules.is_expired(S.PENDING, 101, 100)


def test_retention_purges_processed_and_expired_copies_but_keeps_dead_letters():
    assert rules.is_purgeable(S.PROCESSED, 10, 11)
    assert rules.is_purgeable(S.EXPIRED, 10, 11)
    assert not rules.is_purgeable(S.PROCESSED, 11, 11)
    assert not rules.is_purgeable(S.FAILED, 10, 11)
    assert not rules.is_purgeable(S.PENDING, None, 11)


def test_an_ack_counts_for_a_delivery_and_for_one_handed_back_not_yet_redelivered():
    assert rules.is_ackable(S.DELIVERED, 1)
    assert rules.is_ackable(S.PENDING, 1)
    assert not rules.is_ackable(S.PENDING, 0)
    assert not rules.is_ackable(S.PROCESSED, 1)


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
