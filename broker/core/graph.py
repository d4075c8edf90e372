"""Checking a submission before it reaches storage: keys, references, limits, cycles.

A single Submit is a graph of one node. ``plan`` returns the nodes in an order
in which every node comes after its parent and its prerequisites among the
same call, so storage can insert them one by one and look each reference up.
Checks that need the database (that referenced tasks exist, tree and
dependency depth) are made by storage in the same transaction as the insert.
"""

from __future__ import annotations

from collections import deque

from ..errors import FailedPrecondition, InvalidArgument, ResourceExhausted
from ..models.tasks import GraphNodeInput, PlannedNode, TaskSpecInput


def _check_spec(where: str, spec: TaskSpecInput, n_deps: int, max_deps: int, max_payload: int) -> None:
    if len(spec.payload) > max_payload:
        raise InvalidArgument(f"{where}.payload", f"must be at most {max_payload} bytes")
    if n_deps > max_deps:
        raise ResourceExhausted(
            f"{where}.depends_on: {n_deps} prerequisites; a task may have at most {max_deps}"
        )


def plan_single(spec: TaskSpecInput, max_deps: int, max_payload: int) -> list[PlannedNode]:
    _check_spec("task", spec, len(spec.depends_on), max_deps, max_payload)
    return [PlannedNode("task", spec)]


def plan_graph(nodes: list[GraphNodeInput], max_deps: int, max_payload: int) -> list[PlannedNode]:
    index: dict[str, int] = {}
    for i, n in enumerate(nodes):
        if n.key in index:
            raise InvalidArgument(f"nodes[{i}].key", f"{n.key!r} is used by nodes[{index[n.key]}] too")
        index[n.key] = i
    planned: list[PlannedNode] = []
    incoming = [0] * len(nodes)
    out: list[list[int]] = [[] for _ in nodes]
    for i, n in enumerate(nodes):
        where = f"nodes[{i}].task"
        _check_spec(where, n.task, len(n.task.depends_on) + len(n.depends_on_keys), max_deps, max_payload)
        refs = [d.key for d in n.depends_on_keys]
        if n.parent_key:
            refs.append(n.parent_key)
        for ref in refs:
            j = index.get(ref)
            if j is None:
                field_name = "parent_key" if ref == n.parent_key else "depends_on_keys"
                raise InvalidArgument(f"nodes[{i}].{field_name}", f"no node of this call has key {ref!r}")
            incoming[i] += 1
            out[j].append(i)
        planned.append(
            PlannedNode(
                where,
                n.task,
                key=n.key,
                parent_key=n.parent_key or None,
                dep_keys=[(d.key, d.type) for d in n.depends_on_keys],
            )
        )
    # Kahn's algorithm: parents and prerequisites first; what is left sits on a cycle.
    queue = deque(i for i, c in enumerate(incoming) if c == 0)
    order: list[int] = []
    while queue:
        j = queue.popleft()
        order.append(j)
        for i in out[j]:
            incoming[i] -= 1
            if incoming[i] == 0:
                queue.append(i)
    if len(order) != len(nodes):
        stuck = sorted(nodes[i].key for i, c in enumerate(incoming) if c > 0)
        shown = ", ".join(repr(k) for k in stuck[:10])
        raise FailedPrecondition(
            f"the graph has a cycle (through dependencies or parents) among nodes {shown}"
        )
    return [planned[i] for i in order]
