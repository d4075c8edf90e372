"""The SQLite engine: group commit, per-job rollback, durability of what it said yes to."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from broker.errors import NotFound, StorageUnavailable
from broker.storage.sqlite.engine import SqliteEngine


@pytest.fixture
async def engine(tmp_path):
    db = tmp_path / "e.db"
    with sqlite3.connect(db) as c:
        c.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL CHECK (v >= 0))")
    e = SqliteEngine(str(db), synchronous="FULL")
    await e.open()
    yield e
    await e.close()


def insert(k, v):
    def job(conn):
        conn.execute("INSERT INTO t (k, v) VALUES (?, ?)", (k, v))
        return k

    return job


def count(conn):
    return conn.execute("SELECT count(*) FROM t").fetchone()[0]


async def test_concurrent_writes_share_commits(engine):
    results = await asyncio.gather(*(engine.write(insert(f"k{i}", i)) for i in range(200)))
    assert results == [f"k{i}" for i in range(200)]
    assert await engine.read(count) == 200
    assert engine.jobs == 200
    assert engine.commits < 200  # some commits carried several jobs


async def test_failing_job_is_rolled_back_alone(engine):
    def half_then_fail(conn):
        conn.execute("INSERT INTO t (k, v) VALUES ('half', 1)")
        raise NotFound("nope")

    outcomes = await asyncio.gather(
        engine.write(insert("a", 1)),
        engine.write(half_then_fail),
        engine.write(insert("b", -1)),  # violates the CHECK
        engine.write(insert("c", 3)),
        return_exceptions=True,
    )
    assert outcomes[0] == "a" and outcomes[3] == "c"
    assert isinstance(outcomes[1], NotFound)
    assert isinstance(outcomes[2], StorageUnavailable)  # driver errors stop at the storage layer
    keys = await engine.read(lambda c: sorted(r[0] for r in c.execute("SELECT k FROM t")))
    assert keys == ["a", "c"]


async def test_single_failing_job(engine):
    with pytest.raises(StorageUnavailable):
        await engine.write(insert("x", -5))
    assert await engine.read(count) == 0
    assert await engine.write(insert("y", 1)) == "y"


async def test_committed_writes_survive_reopen(engine, tmp_path):
    await asyncio.gather(*(engine.write(insert(f"k{i}", i)) for i in range(50)))
    await engine.close()
    e2 = SqliteEngine(engine.path)
    await e2.open()
    try:
        assert await e2.read(count) == 50
    finally:
        await e2.close()
    await engine.open()  # reopened, it takes writes again (and the fixture closes it)
    assert await engine.write(insert("after-reopen", 1)) == "after-reopen"


async def test_write_after_close_is_unavailable(tmp_path):
    e = SqliteEngine(str(tmp_path / "x.db"))
    await e.open()
    await e.close()
    with pytest.raises(StorageUnavailable):
        await e.write(lambda c: None)


async def test_write_while_closing_is_unavailable_not_stuck(tmp_path):
    # A write that arrives after close() queued its stop (e.g. a stream's release late in a
    # shutdown) is refused at once; before, it sat behind the stop and never resolved.
    e = SqliteEngine(str(tmp_path / "c.db"))
    await e.open()
    await e.write(lambda c: c.execute("CREATE TABLE t (k TEXT, v INTEGER)"))
    first = asyncio.ensure_future(e.write(insert("a", 1)))
    closing = asyncio.ensure_future(e.close())
    await asyncio.sleep(0)  # close() has queued its stop and waits for the writer
    assert not closing.done()
    with pytest.raises(StorageUnavailable):
        await asyncio.wait_for(e.write(insert("b", 2)), 5)
    assert await asyncio.wait_for(first, 5) == "a"  # queued before the stop: committed
    await asyncio.wait_for(closing, 5)
