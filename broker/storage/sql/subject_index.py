"""The broker's subject index (``domain.subjects.SubjectIndex``), kept in step with the stored
subscriptions, and how a write job matches a subject with it.

Every change of the subscriptions bumps ``subject_index_version`` in its own transaction. The
index here is labelled with the version it was built at. A job that matches a subject reads the
stored version first (once per job): when it equals the index's, the index is right for what this
transaction sees, and answers; otherwise (a subscription made or deleted meanwhile, by this
broker's jobs in the same group or by another broker sharing the database), the job builds an
index of its own from the table, matches with it, and hands it back to be installed after the
commit. So a send matches exactly the subscriptions that exist when it commits, on one broker or
several, and the cost of a change is one rebuild per broker.

The index is read from the writer's thread (inside jobs) and changed from the event loop's thread
(after commits): a lock keeps the two apart. A job never changes it (it may be run again, or
rolled back: see ``broker/storage/base.py``).
"""

from __future__ import annotations

import threading

from ...domain.subjects import SubjectIndex
from .connection import Connection
from .queries import Queries


class Matcher:
    """Matches subjects for one write job (built lazily: a job that sends to no subject reads
    nothing)."""

    __slots__ = ("cache", "conn", "q", "version", "fresh")

    def __init__(self, cache: SubjectIndexCache, conn: Connection, q: Queries) -> None:
        self.cache = cache
        self.conn = conn
        self.q = q
        self.version: int | None = None  # the stored version, once read
        self.fresh: SubjectIndex | None = None  # built from the table (installed after the commit)

    def match(self, subject: str) -> list[int]:
        """The subscriptions whose filter matches ``subject``, as this transaction sees them."""
        if self.version is None:
            self.version = int(self.conn.execute(self.q.subjects.version).fetchone()[0])
        if self.fresh is None:
            found = self.cache.match_at(self.version, subject)
            if found is not None:
                return found
            self.fresh = SubjectIndex((int(r[0]), r[1]) for r in self.conn.execute(self.q.subjects.filters))
        return self.fresh.match(subject)


class SubjectIndexCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._index = SubjectIndex()
        self._version = -1  # not built yet: the first job that matches builds it
        self.rebuilds = 0  # indexes built from the table (for tests and the bench)

    def matcher(self, conn: Connection, q: Queries) -> Matcher:
        return Matcher(self, conn, q)

    def match_at(self, version: int, subject: str) -> list[int] | None:
        """The match, if the index is at ``version``; None when it is not."""
        with self._lock:
            if self._version != version:
                return None
            return self._index.match(subject)

    def install(self, matcher: Matcher | None) -> None:
        """After the commit of a job that built an index of its own: keep it, unless a newer one
        was installed meanwhile."""
        if matcher is None or matcher.fresh is None or matcher.version is None:
            return
        with self._lock:
            self.rebuilds += 1
            if matcher.version > self._version:
                self._index, self._version = matcher.fresh, matcher.version

    def changed(self, version: int, added: tuple[int, str] | None = None, removed: int | None = None) -> None:
        """After the commit of a change that made the stored version ``version``: apply it, if the
        index was at the version before it (else it stays behind, and the next match rebuilds)."""
        with self._lock:
            if self._version != version - 1:
                return
            if added is not None:
                self._index.add(*added)
            if removed is not None:
                self._index.remove(removed)
            self._version = version
