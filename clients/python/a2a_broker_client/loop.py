"""Which event loop a process of ours runs on: uvloop where it is installed (a default dependency
on Linux and macOS; it cuts the cost of each socket read, write and callback), asyncio's own
otherwise, or when ``A2A_BROKER_EVENT_LOOP=asyncio`` (or the broker's ``--event-loop asyncio``)
says so.

    from a2a_broker_client import run
    run(Worker("summarizer-1", capabilities=["summarize"], on_task=summarize).run())
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
ENV = "A2A_BROKER_EVENT_LOOP"
CHOICES = ("auto", "uvloop", "asyncio")


def uvloop_wanted(choice: str | None = None) -> bool:
    """Whether to run on uvloop: ``choice`` (default: ``$A2A_BROKER_EVENT_LOOP``, else auto) is
    uvloop, or auto and uvloop is importable. ``uvloop`` when it is not installed is an error."""
    choice = (choice or os.environ.get(ENV) or "auto").lower()
    if choice not in CHOICES:
        raise ValueError(f"{ENV}: {choice!r} is not one of {', '.join(CHOICES)}")
    if choice == "asyncio":
        return False
    try:
        import uvloop  # noqa: F401
    except ImportError:
        if choice == "uvloop":
            raise ValueError(f"{ENV}=uvloop, but uvloop is not installed (pip install uvloop)") from None
        return False
    return True


def run(main: Coroutine[Any, Any, T], *, loop: str | None = None) -> T:
    """``asyncio.run(main)`` on the loop ``uvloop_wanted(loop)`` picks."""
    if uvloop_wanted(loop):
        import uvloop

        return uvloop.run(main)
    return asyncio.run(main)


def running_on() -> str:
    """The running loop's kind, for logs and benchmarks: "uvloop" or "asyncio"."""
    return "uvloop" if type(asyncio.get_running_loop()).__module__.startswith("uvloop") else "asyncio"
