"""The record rules: the record of an agent's finished tasks, and how records rank agents when
routing by record."""

from __future__ import annotations

from broker.domain.agent_records import DEFER_STEP_S, MAX_DEFERRALS, NO_RECORD, deferral, preference, record


def test_a_record_counts_outcomes_and_run_times():
    r = record([(True, 100), (False, 300), (True, 200)], 60.0)
    assert (r.tasks_completed, r.tasks_failed, r.mean_run_us, r.p95_run_us) == (2, 1, 200, 300)
    assert abs(r.success_rate - 2 / 3) < 1e-9


def test_preference_ranks_success_then_speed_and_a_new_agent_in_the_middle():
    good, slow_good = record([(True, 100)] * 4, 60), record([(True, 900)] * 4, 60)
    bad = record([(False, 100)] * 4, 60)
    assert preference(good) > preference(slow_good) > preference(record([], 60)) > preference(bad)
    assert preference(record([], 60)) == NO_RECORD


def test_deferral_grows_with_the_better_agents_waiting_up_to_a_cap():
    mine = (0.5, 0)
    assert deferral(mine, []) == 0
    assert deferral(mine, [(0.2, 0), (0.5, 0)]) == 0  # nobody better
    assert deferral(mine, [(0.9, 0)]) == DEFER_STEP_S
    assert deferral(mine, [(0.9, 0)] * 10) == MAX_DEFERRALS * DEFER_STEP_S
