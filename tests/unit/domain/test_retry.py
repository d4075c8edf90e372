"""What a failed attempt becomes (broker/domain/retry.py): retry after backoff, or failed."""

from __future__ import annotations

import random

from broker.domain import retry

US = 1_000_000
NOW = 1_000 * US


def failed(attempt, *, departures=0, max_retries=2, initial=US, retryable=True, error="boom"):
    return retry.failed_attempt(
        attempt=attempt,
        departures=departures,
        max_retries=max_retries,
        backoff_initial_us=initial,
        backoff_multiplier=2.0,
        backoff_max_us=60 * US,
        error=error,
        retryable=retryable,
        now=NOW,
        rng=random.Random(3),
    )


def test_a_failure_within_max_retries_is_retried_after_a_backoff():
    out = failed(2)
    assert out.retry
    assert NOW + 2 * US <= out.next_attempt_at <= NOW + 2.4 * US  # second failure: 2 s, +20 %
    assert out.reason.startswith("attempt 2 failed: boom; retry in ")


def test_the_failure_past_max_retries_fails_for_good():
    out = failed(3)
    assert (out.retry, out.next_attempt_at) == (False, None)
    assert out.reason == "attempt 3 failed: boom; no retries left (2)"


def test_a_non_retryable_failure_fails_at_once():
    out = failed(1, retryable=False)
    assert not out.retry
    assert out.reason == "attempt 1 failed: boom; not retryable"


def test_departures_spend_no_retry():
    # attempt 4 after two departures is the second failure: still within 2 retries
    assert failed(4, departures=2).retry
    assert not failed(4, departures=1).retry


def test_no_backoff_means_ready_now():
    out = failed(1, initial=0)
    assert (out.retry, out.next_attempt_at) == (True, None)
    assert out.reason == "attempt 1 failed: boom; retry now"


def test_a_departure_reason_says_no_retry_was_spent():
    assert retry.departure_reason(3, "agent went away") == (
        "attempt 3 ended: agent went away; requeued, no retry spent"
    )
