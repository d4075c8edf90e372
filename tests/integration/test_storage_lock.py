"""Two brokers on one SQLite file: the second refuses to start, with a clear one-line message,
until the first stops (the lock is held for the storage's lifetime, released on close)."""

from __future__ import annotations

import pytest

from broker.errors import BrokerError, StorageLocked
from broker.pb import agents_pb2 as pb
from broker.server import start_server
from tests.conftest import make_settings, stubs_for


async def test_second_broker_on_the_same_file_refuses_to_start(tmp_path):
    settings = make_settings(tmp_path)
    first = await start_server(settings)
    try:
        with pytest.raises(StorageLocked) as err:
            await start_server(settings)
        assert isinstance(err.value, BrokerError)
        message = err.value.message
        assert settings.db in message and "another broker" in message and "\n" not in message
        # The first one is unharmed.
        s = stubs_for(first.address)
        await s.agents.Register(pb.RegisterRequest(agent_id="a", max_concurrent_tasks=1))
        await s.channel.close()
    finally:
        await first.stop(0.2)
    # Stopped: the file is free again, in the same process.
    again = await start_server(settings)
    await again.stop(0.2)


async def test_brokers_on_different_files_run_side_by_side(tmp_path):
    a = await start_server(make_settings(tmp_path / "a"))
    b = await start_server(make_settings(tmp_path / "b"))
    await a.stop(0.2)
    await b.stop(0.2)


def test_serve_on_a_locked_file_exits_with_the_message(tmp_path, broker_process):
    first = broker_process(tmp_path / "broker.db")
    first.start()
    second = broker_process(tmp_path / "broker.db")
    with pytest.raises(RuntimeError) as err:
        second.start()
    assert "exited with" in str(err.value) and "in use by another broker" in str(err.value)
    assert "Traceback" not in str(err.value)
    first.terminate()
