"""Graph checks before storage (broker/domain/submission.py): order, keys, cycles, limits."""

from __future__ import annotations

import pytest

from broker.domain.submission import plan_graph, plan_single
from broker.errors import FailedPrecondition, InvalidArgument, ResourceExhausted
from broker.models.tasks import GraphNodeInput, TaskSpecInput


def n(key, deps=(), parent=None, **spec):
    return GraphNodeInput(
        key=key,
        task=TaskSpecInput(title=key, **spec),
        depends_on_keys=[{"key": d} for d in deps],
        parent_key=parent,
    )


def keys(planned):
    return [p.key for p in planned]


def test_parents_and_prerequisites_come_first():
    order = keys(plan_graph([n("d", ["b", "c"]), n("b", ["a"]), n("c", ["a"], parent="b"), n("a")], 50, 1000))
    for before, after in [("a", "b"), ("a", "c"), ("b", "c"), ("b", "d"), ("c", "d")]:
        assert order.index(before) < order.index(after)


def test_cycles_are_refused_naming_their_nodes():
    with pytest.raises(FailedPrecondition, match="'x', 'y'"):
        plan_graph([n("x", ["y"]), n("y", ["x"]), n("free")], 50, 1000)
    with pytest.raises(FailedPrecondition, match="cycle"):
        plan_graph([n("p", parent="q"), n("q", ["p"])], 50, 1000)


def test_keys_must_be_unique_and_known():
    with pytest.raises(InvalidArgument, match=r"nodes\[1\].key"):
        plan_graph([n("a"), n("a")], 50, 1000)
    with pytest.raises(InvalidArgument, match=r"nodes\[0\].parent_key"):
        plan_graph([n("a", parent="zz")], 50, 1000)


def test_prerequisite_limit_counts_ids_and_keys():
    ids = [{"task_id": f"t-{i}"} for i in range(2)]
    with pytest.raises(ResourceExhausted, match="3 prerequisites"):
        plan_graph([n("a"), n("b", ["a"], depends_on=ids)], 2, 1000)
    with pytest.raises(ResourceExhausted):
        plan_single(TaskSpecInput(title="t", depends_on=ids), 1, 1000)
    with pytest.raises(InvalidArgument, match="payload"):
        plan_single(TaskSpecInput(title="t", payload=b"xx"), 1, 1)
