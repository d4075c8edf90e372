"""The engines' rehearsal, which the whole contract suite runs under (``-rerun``): a write group runs
twice, the first run rolled back, and only the second one's changes are committed."""

from __future__ import annotations

from typing import Any

from broker.storage import Storage
from broker.storage.base import TokenRecord
from broker.storage.sql.tokens import insert_token

from .helpers import T0


async def test_a_rehearsed_write_group_runs_twice_and_commits_once(store: Storage) -> None:
    engine: Any = store.engine
    runs: list[int] = []
    rec = TokenRecord("t1", "digest", "agent-1", "agent", T0)

    def job(conn: Any) -> int:
        runs.append(1)
        insert_token(conn, store.q, rec)  # a second insert, not rolled back, would clash
        return len(runs)

    assert await engine.write(job) == (2 if engine.rehearse else 1)
    assert await store.get_token("t1") == rec
