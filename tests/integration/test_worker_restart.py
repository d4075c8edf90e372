"""The Worker across broker outages: a completion finished while the broker was down gets in
once it is back (the task is not run twice), and a Worker started before the broker waits for
it and then registers. The broker runs as a subprocess, killed and restarted on the same port."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from a2a_broker_client import BrokerClient, BrokerRpcError, TaskContext, TaskStatus, Worker

from tests.conftest import BrokerProcess, eventually, free_port

# Slow; and under pytest -n (make test) the SIGKILL tests run one after another on one worker.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("crash")]

# The Worker used to give up on Complete after 6 failed calls (about 6 s of backoff).
OLD_GIVE_UP_CALLS = 6


@pytest.fixture
async def brokers(tmp_path: Path) -> AsyncIterator[Callable[[int], BrokerProcess]]:
    """Broker subprocesses on one SQLite file; each call makes one on the given port."""
    made: list[BrokerProcess] = []

    def make(port: int) -> BrokerProcess:
        p = BrokerProcess(tmp_path / "broker.db", port=port, A2A_BROKER_LOG_LEVEL="WARNING")
        made.append(p)
        return p

    yield make
    for p in made:
        p.kill()
        if p.proc and p.proc.stderr:
            p.proc.stderr.close()


async def _wait(event: asyncio.Event, what: str, timeout: float = 20.0) -> None:
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}") from None


async def test_completion_made_while_the_broker_is_down_lands_after_restart(brokers, caplog):
    caplog.set_level(logging.DEBUG, logger="a2a_broker_client.worker")
    port = free_port()
    first = brokers(port)
    await asyncio.to_thread(first.start)
    started, release, enough_failures = asyncio.Event(), asyncio.Event(), asyncio.Event()
    runs: list[int] = []

    async def on_task(ctx: TaskContext) -> dict[str, int]:
        runs.append(ctx.attempt)
        started.set()
        await release.wait()
        return {"attempt": ctx.attempt}

    w = Worker("restart-w", address=first.address, on_task=on_task)
    real_complete = w.client.complete
    failed_calls = 0

    async def counting_complete(*args: Any, **kwargs: Any) -> Any:
        nonlocal failed_calls
        try:
            return await real_complete(*args, **kwargs)
        except BrokerRpcError:
            failed_calls += 1
            if failed_calls > OLD_GIVE_UP_CALLS:
                enough_failures.set()
            raise

    w.client.complete = counting_complete  # type: ignore[method-assign]
    async with BrokerClient(first.address, timeout=10) as client:
        await w.start()
        try:
            tid = (await client.submit("survive", lease_timeout=120)).task.task_id
            await _wait(started, "the handler to start")
            first.kill()  # the broker goes away while the handler works
            release.set()  # ... and the handler finishes during the outage
            await _wait(enough_failures, f"more than {OLD_GIVE_UP_CALLS} refused Complete calls")
            await asyncio.to_thread(brokers(port).start)  # back, on the same file and port
            t = await client.wait_for_task(tid, timeout=20)
            assert t.status == TaskStatus.COMPLETED and t.result_data == {"attempt": 1}
            assert t.attempt == 1 and runs == [1]  # completed by the first run, not run again

            async def counted() -> bool:  # the worker sees the answer a moment after the broker commits
                return w.stats.tasks_completed == 1

            await eventually(counted, timeout=10, what="the worker to count its completion")
            assert not w.stats.errors
            # The outage lasted many reconnect attempts: each kind of trouble is a warning once.
            warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
            for trouble in ("task stream broke", "message stream broke", "heartbeat failed"):
                assert sum(trouble in m for m in warned) <= 1, warned
            assert sum("task stream broke" in r.getMessage() for r in caplog.records) > 1
        finally:
            await w.stop(drain_timeout=2)


async def test_worker_started_before_the_broker_waits_then_registers(brokers, caplog):
    caplog.set_level(logging.INFO, logger="a2a_broker_client.worker")
    port = free_port()
    done = asyncio.Event()

    async def on_task(ctx: TaskContext) -> str:
        done.set()
        return "ran"

    w = Worker("early-w", address=f"127.0.0.1:{port}", on_task=on_task, capabilities=["early"])
    runner = asyncio.create_task(w.run(handle_signals=False))
    try:
        # Wait until the worker has found nobody at the address (and said so), then start the broker.
        async def said_waiting() -> bool:
            assert not runner.done(), f"the worker exited: {runner.exception()!r}"
            return any("waiting for the broker" in r.getMessage() for r in caplog.records)

        await eventually(said_waiting, timeout=10, what="the worker to say it waits for the broker")
        broker = brokers(port)
        await asyncio.to_thread(broker.start)
        await _wait(w.ready, "the worker to register")
        async with BrokerClient(broker.address, timeout=10) as client:
            assert (await client.get_agent("early-w")).capabilities == ("early",)
            tid = (await client.submit("first", required_capabilities=["early"])).task.task_id
            await _wait(done, "the task to run")
            t = await client.wait_for_task(tid, timeout=20)
            assert t.status == TaskStatus.COMPLETED and t.result_data == "ran"
        waiting = [r for r in caplog.records if "waiting for the broker" in r.getMessage()]
        assert len(waiting) == 1, [r.getMessage() for r in waiting]  # said once, not per retry
    finally:
        w.request_stop()
        await asyncio.wait_for(runner, 20)
