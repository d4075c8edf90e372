"""``--dist loadgroup`` (make test) on pytest 9.2: keep the tests of one ``xdist_group`` together.

pytest-xdist 3.8 groups by appending ``@group`` to ``item._nodeid`` on the worker, which pytest 9.2
no longer reads (its node ids are structured: ``item._id``), so every group is silently spread over
the workers (pytest-dev/pytest-xdist#1386, open). This carries the suffix into the id pytest reads,
after xdist's hook; nothing happens when xdist did not rename an item, or once it does so itself.
tests/unit/test_xdist_groups.py checks that a group lands on one worker.

Registered by tests/conftest.py; ``-p tests.xdist_groups`` loads it alone.
"""

from __future__ import annotations

import pytest
from _pytest.nodeid import NodeId


@pytest.hookimpl(trylast=True)  # after pytest-xdist's own, which sets item._nodeid
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        grouped = item.__dict__.get("_nodeid")
        if isinstance(grouped, str) and grouped != item.nodeid:
            item._id = NodeId.parse(grouped)  # type: ignore[attr-defined]
