"""What a submission must satisfy: keys, references, limits, cycles, idempotency, depth.

Before storage: a single Submit is a graph of one node. ``plan_single`` and
``plan_graph`` check what needs nothing stored (payload size, prerequisite
count, keys, references within the call, cycles) and return the nodes in an
order in which every node comes after its parent and its prerequisites among
the same call, so storage can insert them one by one and look each reference up.

Against what is stored (called by storage in the same transaction as the
insert): an idempotency key reused with the same spec is the same task, with
another spec a conflict (``idempotent_duplicate``); a task sits at most
``max_depth`` levels deep in its tree (``check_level``) and at the end of a
chain of at most ``max_depth`` prerequisites (``check_dep_depth``); a
prerequisite is listed once, and a hard one that already failed or was
cancelled refuses the task (``check_prerequisite``). The first status is
``dependencies.initial_status``'s.
"""

from __future__ import annotations

import hashlib
from collections import deque

from ..errors import AlreadyExists, FailedPrecondition, InvalidArgument, ResourceExhausted
from ..models.tasks import DepType, GraphNodeInput, PlannedNode, TaskSpecInput, TaskStatus
from .dependencies import HOPELESS


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


# ---------------------------------------------------------------- against stored tasks


def fingerprint(spec: TaskSpecInput) -> str:
    """Identifies a spec, to tell an idempotent retry from a clash of keys."""
    # Without the fields added since when they are unset: a spec stored before they existed keeps
    # its fingerprint.
    exclude = {"traceparent"}
    if not spec.labels:
        exclude.add("labels")
    if spec.not_before is None:
        exclude.add("not_before")
    if spec.concurrency_key is None:
        exclude.add("concurrency_key")
    return hashlib.sha256(spec.model_dump_json(exclude=exclude).encode()).hexdigest()[:32]


def idempotent_duplicate(
    where: str, spec: TaskSpecInput, found_id: str, found_fingerprint: str | None
) -> str:
    """A task ``found_id`` already has the spec's idempotency key: it is the same submission
    (return its id) if it has the same fingerprint; otherwise AlreadyExists."""
    if found_fingerprint != fingerprint(spec):
        raise AlreadyExists(
            f"{where}.idempotency_key: {spec.idempotency_key!r} was used for another task"
            f" ({found_id}) with a different spec"
        )
    return found_id


Place = tuple[str | None, list[tuple[str, DepType]]]  # a task's parent id and its prerequisites


def check_same_place(where: str, spec: TaskSpecInput, found_id: str, place: Place, found: Place) -> None:
    """An idempotent retry must also put the task in the same place: the same parent and the same
    prerequisites (graph keys resolved to ids). Otherwise the key is reused for another task:
    AlreadyExists."""
    if place[0] != found[0] or set(place[1]) != set(found[1]):
        raise AlreadyExists(
            f"{where}.idempotency_key: {spec.idempotency_key!r} was used for a task ({found_id})"
            " with a different parent or different prerequisites"
        )


def check_level(where: str, parent_level: int, max_depth: int) -> int:
    """The level of a child of a task at ``parent_level``; ResourceExhausted past ``max_depth``."""
    level = parent_level + 1
    if level > max_depth:
        raise ResourceExhausted(
            f"{where}.parent_id: the task would be at depth {level} of its tree;"
            f" at most {max_depth} levels are allowed"
        )
    return level


def check_prerequisite(where: str, prerequisite_id: str, dep_type: DepType, status: TaskStatus) -> None:
    """A hard prerequisite that already failed or was cancelled can never complete."""
    if dep_type == DepType.HARD and status in HOPELESS:
        raise FailedPrecondition(
            f"{where}.depends_on: hard prerequisite {prerequisite_id!r} is {status.value};"
            " it can never complete"
        )


def check_listed_once(where: str, prerequisite_id: str, seen: set[str]) -> None:
    """Each prerequisite is listed once (adds it to ``seen``)."""
    if prerequisite_id in seen:
        raise InvalidArgument(f"{where}.depends_on", f"task {prerequisite_id!r} is listed twice")
    seen.add(prerequisite_id)


def check_dep_depth(where: str, dep_depth: int, max_depth: int) -> None:
    """``dep_depth``: one more than the deepest prerequisite's (0 without prerequisites)."""
    if dep_depth > max_depth:
        raise ResourceExhausted(
            f"{where}.depends_on: the chain of prerequisites would be {dep_depth} deep;"
            f" at most {max_depth} are allowed"
        )
