"""Storage backends behind one protocol; ``open_storage`` picks one by URL."""

from __future__ import annotations

import logging
import os
import re
from typing import TYPE_CHECKING

from ..config import sqlite_path
from ..errors import BrokerError
from .base import Storage

if TYPE_CHECKING:
    from ..config import Settings

__all__ = ["Storage", "open_storage", "sqlite_path"]

log = logging.getLogger("broker.storage")


def _absolute(path: str) -> str:
    return path if path == ":memory:" else os.path.abspath(path)


async def open_storage(settings: Settings) -> Storage:
    """Open (and migrate) the backend named by ``settings.db``."""
    url = settings.db
    path = sqlite_path(url)
    if path is not None:
        from .sqlite import SqliteStorage

        where = _absolute(path)
        log.info("opening SQLite database %s", where, extra={"path": where})
        storage = SqliteStorage(path, settings)
        await storage.open()
        return storage
    scheme = url.split("://", 1)[0]
    if scheme in ("postgresql", "postgres"):
        try:
            from .postgres import PgStorage
        except ImportError as exc:  # psycopg is the [postgres] extra
            raise BrokerError(
                f"the PostgreSQL backend needs psycopg: pip install 'a2a-broker[postgres]' ({exc})"
            ) from None
        log.info("opening PostgreSQL database %s", redact(url), extra={"url": redact(url)})
        pg = PgStorage(url, settings)
        await pg.open()
        return pg
    raise BrokerError(f"unknown storage URL scheme {scheme!r}: use a path, sqlite:///path or postgresql://")


def redact(url: str) -> str:
    """A URL fit for a log line: its password replaced by ***."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)
