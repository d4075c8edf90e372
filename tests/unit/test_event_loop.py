"""Which event loop our processes run on: uvloop where installed, asyncio's own when told."""

from __future__ import annotations

import pytest
from a2a_broker_client.loop import run, running_on, uvloop_wanted


async def _kind() -> str:
    return running_on()


def test_run_is_on_uvloop_unless_told_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("A2A_BROKER_EVENT_LOOP", raising=False)
    assert uvloop_wanted() and run(_kind()) == "uvloop"  # uvloop is a dependency here
    assert run(_kind(), loop="asyncio") == "asyncio"
    monkeypatch.setenv("A2A_BROKER_EVENT_LOOP", "asyncio")
    assert run(_kind()) == "asyncio"
    monkeypatch.setenv("A2A_BROKER_EVENT_LOOP", "tokio")
    with pytest.raises(
        ValueError, match="A2A_BROKER_EVENT_LOOP: 'tokio' is not one of auto, uvloop, asyncio"
    ):
        uvloop_wanted()
