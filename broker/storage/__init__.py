"""Storage backends behind one protocol; ``open_storage`` picks one by URL."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import BrokerError
from .base import Storage

if TYPE_CHECKING:
    from ..config import Settings

__all__ = ["Storage", "open_storage", "sqlite_path"]


def sqlite_path(url: str) -> str | None:
    """The file path of a SQLite URL or bare path, or None for another scheme."""
    if url.startswith("sqlite:///"):
        return url[len("sqlite:///") :] or ":memory:"
    if url.startswith("sqlite://"):
        return url[len("sqlite://") :] or ":memory:"
    if "://" in url:
        return None
    return url


async def open_storage(settings: Settings) -> Storage:
    """Open (and migrate) the backend named by ``settings.db``."""
    url = settings.db
    path = sqlite_path(url)
    if path is not None:
        from .sqlite import SqliteStorage

        storage = SqliteStorage(path, settings)
        await storage.open()
        return storage
    scheme = url.split("://", 1)[0]
    if scheme in ("postgresql", "postgres"):
        raise BrokerError("the PostgreSQL backend is not available yet; use a SQLite path or sqlite:/// URL")
    raise BrokerError(f"unknown storage URL scheme {scheme!r}: use a path or sqlite:///path")
