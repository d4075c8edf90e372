"""The frames of a duplex stream: each push with the confirmation next to it, in order on both
sides, at most one of each per frame."""

from __future__ import annotations

from broker.core.streams import frames


def is_confirm(x: object) -> bool:
    return isinstance(x, str) and x.startswith("c")


def test_a_push_and_a_confirmation_share_a_frame_and_order_is_kept_on_both_sides():
    assert frames(["p1", "c1"], is_confirm) == [("p1", "c1")]
    assert frames(["c1", "p1"], is_confirm) == [("p1", "c1")]
    assert frames(["p1", "p2", "c1"], is_confirm) == [("p1", None), ("p2", "c1")]
    assert frames(["c1", "c2", "p1"], is_confirm) == [(None, "c1"), ("p1", "c2")]
    assert frames(["p1", "c1", "c2", "p2", "p3"], is_confirm) == [("p1", "c1"), ("p2", "c2"), ("p3", None)]


def test_nothing_ready_but_markers_makes_no_frame():
    assert frames([None], is_confirm) == []
    assert frames([None, "c1", None], is_confirm) == [(None, "c1")]
