"""An agent's free capacity (broker/domain/capacity.py)."""

from __future__ import annotations

from broker.domain.capacity import covers, free_capacity, lease_count


def test_free_capacity_is_the_room_left_under_the_limit():
    assert free_capacity("available", 4, 1, None) == 3
    assert free_capacity("busy", 4, 4, None) == 0


def test_a_reported_free_capacity_lowers_it_but_never_raises_it():
    assert free_capacity("available", 4, 1, 2) == 2
    assert free_capacity("available", 4, 3, 2) == 1


def test_an_agent_in_maintenance_or_offline_has_none():
    for status in ("maintenance", "offline", "deregistered"):
        assert free_capacity(status, 4, 0, None) == 0


def test_it_is_never_negative():
    assert free_capacity("available", 2, 3, None) == 0


def test_a_lease_takes_what_was_asked_within_the_free_capacity():
    assert lease_count(10, 3) == 3
    assert lease_count(2, 3) == 2
    assert lease_count(5, 0) == 0


def test_an_agent_runs_a_task_only_with_every_capability_it_requires():
    assert covers({"gpu", "py"}, ("gpu",))
    assert covers({"gpu", "py"}, ("gpu", "py"))
    assert not covers({"py"}, ("gpu", "py"))


def test_a_task_requiring_nothing_goes_only_to_an_agent_holding_any():
    # issue 22.6: a specialist asking first must not get work it cannot do
    assert not covers({"summarize"}, ())
    assert covers({"*"}, ()) and covers({"*", "summarize"}, ())
    assert covers({"*"}, ("*",)) and not covers(set(), ())
