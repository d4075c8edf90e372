"""Throttled: at most one line per period, and the next one counts those left out."""

from __future__ import annotations

import logging

from broker.logs import Throttled


def test_a_flood_logs_one_line_per_period_then_counts_the_rest(caplog):
    now = [100.0]
    t = Throttled(logging.getLogger("test.throttled"), period_s=10.0, clock=lambda: now[0])
    caplog.set_level(logging.WARNING, logger="test.throttled")
    assert t.log("bad request %s", 1)
    for i in range(5):
        now[0] += 1
        assert not t.log("bad request %s", i)
    now[0] = 110.0
    assert t.log("bad request %s", "late")
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["bad request 1", "bad request late (5 more like it in the last 10 s not logged)"]
