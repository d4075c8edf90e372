"""Messaging rules (filled in by the Messaging work)."""

from __future__ import annotations

from ..config import Settings
from ..storage.base import Storage
from .registry import Registry


class Mailbox:
    def __init__(self, storage: Storage, registry: Registry, settings: Settings) -> None:
        self.storage = storage
        self.registry = registry
        self.settings = settings

    async def sweep(self) -> None:
        """Ack deadlines, scheduled delivery, expiry, retention."""
