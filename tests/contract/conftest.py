"""The storage contract suite: one behaviour suite for the ``Storage`` protocol
(broker/storage/base.py), run against every backend.

Each test calls a backend directly (no server, no core): it opens a fresh store with ``store``,
drives it with explicit times (every operation takes ``now``, so nothing waits on a clock) and
checks what the protocol promises. A new backend joins by adding one entry to ``BACKENDS``: a
function that opens an empty, migrated store of that kind in a temporary folder.

Every test runs a third and fourth time with the engine rehearsing (``-rerun``): each write group
runs whole, is rolled back, and runs again before it commits, as PostgreSQL's engine runs a group
again after a serialization failure. The protocol says every write job must allow that
(broker/storage/base.py); the suite passing under it is the check.

Only the operations that stay in the protocol are exercised (register, heartbeat, mark_offline,
send, claim, ack, nack, release, sweep, submit, lease, extend, complete, fail, cancel, list,
history); wake-up keys, capture callbacks and other in-process plumbing are left out, since they
are leaving the protocol.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from broker.storage import Storage, open_storage
from tests.conftest import make_settings

BACKENDS = ["postgres", "sqlite", "postgres-rerun", "sqlite-rerun"]


@pytest.fixture
def contract_settings() -> dict[str, Any]:
    """Settings overrides for one test module (or test, by indirect parametrisation)."""
    return {}


@pytest.fixture(params=BACKENDS)
async def store(request, tmp_path: Path, contract_settings: dict[str, Any]) -> AsyncIterator[Storage]:
    overrides = dict(contract_settings)
    backend, _, rerun = request.param.partition("-")
    if backend == "postgres":
        overrides["db"] = request.getfixturevalue("pg_url")
    settings = make_settings(tmp_path, **overrides)
    s = await open_storage(settings)
    s.engine.rehearse = bool(rerun)  # every write group run twice, the first time rolled back
    try:
        yield s
    finally:
        await s.close()
