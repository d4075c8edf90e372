"""The database's guard rails over tasks are generated from the domain's declarations, and a
migrated schema runs exactly what is generated: the state machine's triggers from
``domain.task_states.TRANSITIONS`` (and ``INITIAL``), the holder's counts from ``domain.capacity``
(``ON_LEASE``, ``ON_RELEASE``), on SQLite (trigger statements) and PostgreSQL (trigger functions).
A change of a declaration that no migration carries fails here."""

from __future__ import annotations

import sqlite3

import pytest

from broker.domain.task_states import TRANSITIONS
from broker.models.tasks import TaskStatus as S
from broker.storage.postgres import triggers as pg
from broker.storage.sqlite import triggers as lite
from broker.storage.sqlite.migrate import migrate


def words(sql: str) -> str:
    """The SQL with its white space folded (how it is laid out is not what it does)."""
    return " ".join(sql.split())


@pytest.mark.parametrize("name", list(lite.triggers()))
def test_a_migrated_sqlite_file_runs_the_generated_trigger(tmp_path, name):
    db = tmp_path / "t.db"
    migrate(str(db))
    with sqlite3.connect(db) as conn:
        (stored,) = conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?", (name,)
        ).fetchone()
    assert words(stored) == words(lite.triggers()[name])


@pytest.mark.parametrize("name", list(pg.functions()))
def test_a_migrated_postgresql_database_runs_the_generated_function(pg_url, name):
    import psycopg

    with psycopg.connect(pg_url) as conn:
        (stored,) = conn.execute("SELECT prosrc FROM pg_proc WHERE proname = %s", (name,)).fetchone()
    assert words(stored) == words(pg.functions()[name])


def test_the_generated_triggers_follow_the_declarations():
    """A transition added to TRANSITIONS appears in both dialects' generated state machine (so a
    schema that does not allow it yet differs from what is generated, and the tests above fail)."""
    more = {**TRANSITIONS, S.COMPLETED: frozenset({S.READY})}
    edge = "(OLD.status = 'completed' AND NEW.status IN ('ready'))"
    assert edge not in lite.transition_trigger() and edge in lite.transition_trigger(more)
    assert edge not in pg.transition_function() and edge in pg.transition_function(more)
    assert "NEW.status IN ('ready', 'completed', 'failed', 'cancelled')" in lite.transition_trigger()
