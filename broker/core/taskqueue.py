"""TaskQueue rules (filled in by the TaskQueue work)."""

from __future__ import annotations

from ..config import Settings
from ..storage.base import Storage
from .registry import Registry


class TaskQueue:
    def __init__(self, storage: Storage, registry: Registry, settings: Settings) -> None:
        self.storage = storage
        self.registry = registry
        self.settings = settings

    async def sweep(self) -> None:
        """Lease expiry, retry backoff, retention."""
