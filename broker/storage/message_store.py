"""The messaging part of the Storage protocol (filled in by the Messaging work)."""

from __future__ import annotations

from typing import Protocol


class MessageStore(Protocol):
    pass
