"""Fixtures of the integration tests. ``cluster``: several brokers on one PostgreSQL database, in
this process.

Each broker has its own connections, sweeper and relay. The relay's polling fallback is set far
beyond each test's timeouts, so that something reaching another broker within them proves the
notification (a test that wants the poll sets ``pg_poll_interval_s`` itself).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from broker.server import Broker, start_server
from tests.conftest import Stubs, make_settings, stubs_for

NO_POLL = {"pg_poll_interval_s": 60.0}  # only a notification can wake a stream within a test


@pytest.fixture
async def cluster(
    tmp_path: Path, pg_url: str
) -> AsyncIterator[Callable[..., Awaitable[tuple[Broker, Stubs]]]]:
    """Start brokers on this test's database: ``await cluster(**settings)`` -> (broker, stubs)."""
    made: list[tuple[Broker, Stubs]] = []

    async def start(**overrides: Any) -> tuple[Broker, Stubs]:
        b = await start_server(make_settings(tmp_path, db=pg_url, **{**NO_POLL, **overrides}))
        made.append((b, stubs_for(b.address)))
        return made[-1]

    yield start
    for b, s in made:
        await s.channel.close()
        await b.stop(0.2)
