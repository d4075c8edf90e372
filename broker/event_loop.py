"""The loop the broker runs on (``--event-loop``): uvloop where it is installed (a dependency on
Linux and macOS) when the setting is ``auto`` or ``uvloop``, asyncio's own otherwise. The server's
own choice, not the Python client's (``a2a_broker_client.loop`` does the same for client
processes): the broker is installed and started without the client."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


class LoopUnavailable(ValueError):
    """``--event-loop uvloop`` where uvloop cannot be imported."""


def run(main: Coroutine[Any, Any, None], choice: str) -> None:
    """``asyncio.run(main)`` on the loop ``choice`` (auto, uvloop, asyncio) names."""
    if choice != "asyncio":
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                main.close()
                raise LoopUnavailable("uvloop is not installed (pip install uvloop)") from None
        else:
            uvloop.run(main)
            return
    asyncio.run(main)
