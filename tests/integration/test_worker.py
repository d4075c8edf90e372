"""The Worker helper end to end against a real broker: messages acked or redelivered, tasks
within capacity, leases kept alive, cancellation, lease loss; SIGTERM drain in a subprocess."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from a2a_broker_client import (
    BrokerClient,
    Message,
    MessageStatus,
    NonRetryableError,
    NotFoundError,
    TaskContext,
    TaskStatus,
    Worker,
)

from tests.conftest import ROOT, eventually


@pytest.fixture
async def client(broker) -> AsyncIterator[BrokerClient]:
    async with BrokerClient(broker.address, timeout=10) as c:
        await c.register("sender", max_concurrent_tasks=1)
        yield c


@pytest.fixture
async def start_worker(broker) -> AsyncIterator[Callable[..., Awaitable[Worker]]]:
    made: list[Worker] = []

    async def start(agent_id: str = "w1", **kwargs: Any) -> Worker:
        w = Worker(agent_id, address=broker.address, **kwargs)
        await w.start()
        made.append(w)
        return w

    yield start
    for w in made:
        await w.stop(drain_timeout=2)


async def wait_for(event: asyncio.Event, timeout: float = 10.0, what: str = "event") -> None:
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}") from None


async def test_messages_are_handled_and_acked(client, start_worker):
    got: list[Any] = []
    all_in = asyncio.Event()

    async def on_message(msg: Message) -> None:
        got.append(msg.data)
        if len(got) == 5:
            all_in.set()

    w = await start_worker(on_message=on_message)
    ids = [(await client.send("sender", "w1", {"n": i})).message_id for i in range(5)]
    await wait_for(all_in, what="5 messages handled")
    assert sorted(d["n"] for d in got) == list(range(5))

    async def all_processed() -> bool:
        return all([(await client.get_message(i)).status == MessageStatus.PROCESSED for i in ids])

    await eventually(all_processed, timeout=10, what="every message processed")
    assert w.stats.messages_acked == 5 and w.stats.messages_nacked == 0


async def test_raising_handler_leads_to_redelivery(client, start_worker):
    attempts: list[int] = []
    handled = asyncio.Event()

    async def on_message(msg: Message) -> None:
        attempts.append(msg.attempt)
        if msg.attempt == 1:
            raise RuntimeError("flaky downstream")
        handled.set()

    w = await start_worker(on_message=on_message)
    mid = (await client.send("sender", "w1", "hello")).message_id
    await wait_for(handled, what="the redelivered message")
    assert attempts == [1, 2]

    async def processed() -> Any:
        m = await client.get_message(mid)
        return m if m.status == MessageStatus.PROCESSED else None

    m = await eventually(processed, timeout=10, what="message processed after redelivery")
    assert m.attempt == 2
    assert w.stats.messages_nacked == 1 and w.stats.messages_acked == 1


async def test_tasks_run_within_capacity(client, start_worker, broker):
    running = 0
    peak = 0
    both_running = asyncio.Event()
    release = asyncio.Event()

    async def on_task(ctx: TaskContext) -> dict[str, int]:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        if running == 2:
            both_running.set()
        try:
            await release.wait()  # held until the test has seen two running at once
            return {"n": ctx.data["n"] * 10}
        finally:
            running -= 1

    w = await start_worker(on_task=on_task, capacity=2, capabilities=["calc"])
    ids = [
        (await client.submit("calc", payload={"n": i}, required_capabilities=["calc"])).task.task_id
        for i in range(6)
    ]
    await wait_for(both_running, what="two tasks running at once")
    agent = await client.get_agent("w1")
    assert agent.current_task_count == 2
    assert len([t async for t in client.iter_tasks(status="running")]) == 2
    release.set()
    done = [await client.wait_for_task(i, timeout=15) for i in ids]
    assert [t.status for t in done] == [TaskStatus.COMPLETED] * 6
    assert sorted(t.result_data["n"] for t in done) == [0, 10, 20, 30, 40, 50]
    assert peak == 2 and w.stats.max_concurrent_tasks == 2

    async def counted() -> bool:  # the worker reads its confirmation a moment after the commit
        return w.stats.tasks_completed == 6

    await eventually(counted, timeout=10, what="the worker to count six completions")
    assert (await client.get_agent("w1")).current_task_count == 0


async def test_long_task_lease_is_kept_alive(client, start_worker):
    # A 1 s lease with a handler that works for 3 s: without ExtendLease the sweeper
    # (every 0.05 s here) would take the task back and count a failed attempt.
    async def on_task(ctx: TaskContext) -> str:
        for pct in (25, 50, 75):
            await asyncio.sleep(0.75)  # the work itself
            if pct == 50:
                await ctx.progress(pct, "halfway")
        return "done"

    w = await start_worker(on_task=on_task)
    tid = (await client.submit("slow", lease_timeout=1)).task.task_id
    t = await client.wait_for_task(tid, timeout=20)
    assert t.status == TaskStatus.COMPLETED and t.result_data == "done"
    assert t.attempt == 1
    hist = await client.get_history(tid)
    assert [h.to_status for h in hist].count(TaskStatus.RUNNING) == 1
    assert w.stats.tasks_lost == 0
    assert t.status_note == "halfway" or t.progress >= 50


async def test_cancelled_task_handler_is_stopped(client, start_worker):
    started = asyncio.Event()
    stopped = asyncio.Event()

    async def on_task(ctx: TaskContext) -> None:
        started.set()
        try:
            await asyncio.Event().wait()  # never finishes on its own
        except asyncio.CancelledError:
            stopped.set()
            raise

    w = await start_worker(on_task=on_task)
    tid = (await client.submit("forever")).task.task_id
    await wait_for(started, what="handler start")
    assert await client.cancel(tid, reason="no longer needed") == [tid]
    await wait_for(stopped, what="handler cancelled by the broker's cancellation")
    assert (await client.get_task(tid)).status == TaskStatus.CANCELLED
    await eventually(lambda: _async(w.stats.tasks_cancelled == 1), what="cancel counted")
    assert w.stats.tasks_completed == 0 and w.stats.tasks_failed == 0
    assert (await client.get_agent("w1")).current_task_count == 0


async def test_handler_errors_fail_the_task(client, start_worker):
    async def on_task(ctx: TaskContext) -> None:
        if ctx.task.title == "fatal":
            raise NonRetryableError("bad input")
        raise ValueError(f"attempt {ctx.attempt} failed")

    await start_worker(on_task=on_task)
    fatal = (await client.submit("fatal", retry=_retries(3))).task.task_id
    flaky = (await client.submit("flaky", retry=_retries(1, backoff=0.05))).task.task_id
    t = await client.wait_for_task(fatal, timeout=10)
    assert t.status == TaskStatus.FAILED and t.attempt == 1 and "NonRetryableError: bad input" in t.last_error
    t = await client.wait_for_task(flaky, timeout=10)
    assert t.status == TaskStatus.FAILED and t.attempt == 2 and "ValueError: attempt 2 failed" in t.last_error


async def test_lost_lease_stops_the_handler(client, start_worker):
    started = asyncio.Event()
    stopped = asyncio.Event()

    async def on_task(ctx: TaskContext) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            stopped.set()
            raise

    w = await start_worker(on_task=on_task)
    tid = (await client.submit("x", lease_timeout=1)).task.task_id
    await wait_for(started, what="handler start")
    # Someone takes the agent's work away (e.g. an operator deregisters it): its next
    # ExtendLease is refused, and the worker stops the handler instead of running blind.
    await client.deregister("w1")
    await wait_for(stopped, what="handler stopped after the lease was lost")
    # It hears it from its refused extension (lost) or, first, from the broker telling its stream
    # the lease was taken back (cancelled): either way the handler stops and nothing completes.
    assert w.stats.tasks_lost + w.stats.tasks_cancelled == 1 and w.stats.tasks_completed == 0
    assert (await client.get_task(tid)).status in (TaskStatus.READY, TaskStatus.RUNNING)


# ---------------------------------------------------------------- SIGTERM, in a subprocess

WORKER_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from a2a_broker_client import Worker

    async def on_message(msg):
        print("message", msg.message_id, flush=True)
        await asyncio.sleep(float(sys.argv[3]))   # the work
        print("message done", flush=True)

    async def on_task(ctx):
        print("task", ctx.task_id, flush=True)
        await asyncio.sleep(float(sys.argv[3]))   # the work
        return {"by": ctx.agent_id}

    w = Worker("sub-w", address=sys.argv[1], on_message=on_message, on_task=on_task,
               drain_timeout=float(sys.argv[2]))
    asyncio.run(w.run())
    print("exited cleanly", flush=True)
    """
)


async def _spawn_worker(tmp_path, address: str, drain: float, work: float) -> asyncio.subprocess.Process:
    script = tmp_path / "worker.py"
    script.write_text(WORKER_SCRIPT)
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        address,
        str(drain),
        str(work),
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def _read_until(proc: asyncio.subprocess.Process, prefixes: set[str], timeout: float = 20) -> list[str]:
    """Lines of the worker's stdout until one line starting with each prefix was seen."""
    assert proc.stdout is not None
    lines: list[str] = []
    left = set(prefixes)
    while left:
        line = (await asyncio.wait_for(proc.stdout.readline(), timeout)).decode().strip()
        if not line:
            err = (await proc.stderr.read()).decode() if proc.stderr else ""
            raise AssertionError(f"worker exited early; stdout {lines}; stderr {err[-2000:]}")
        lines.append(line)
        left = {p for p in left if not line.startswith(p)}
    return lines


async def test_sigterm_finishes_held_work_then_deregisters(client, broker, tmp_path):
    proc = await _spawn_worker(tmp_path, broker.address, drain=20, work=1.0)
    try:
        await eventually(lambda: _registered(client, "sub-w"), timeout=20, what="worker registered")
        tid = (await client.submit("job")).task.task_id
        mid = (await client.send("sender", "sub-w", "hi")).message_id
        await _read_until(proc, {"task ", "message "})
        proc.send_signal(signal.SIGTERM)  # both handlers are mid-work
        out, err = await asyncio.wait_for(proc.communicate(), 20)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()[-2000:]
    assert "exited cleanly" in out.decode()
    t = await client.get_task(tid)
    assert t.status == TaskStatus.COMPLETED and t.result_data == {"by": "sub-w"}
    assert (await client.get_message(mid)).status == MessageStatus.PROCESSED
    with pytest.raises(NotFoundError):
        await client.get_agent("sub-w")


async def test_sigterm_releases_work_that_outlasts_the_drain(client, broker, tmp_path):
    proc = await _spawn_worker(tmp_path, broker.address, drain=0.3, work=3600)
    try:
        await eventually(lambda: _registered(client, "sub-w"), timeout=20, what="worker registered")
        tid = (await client.submit("endless", retry=_retries(3, backoff=0.05))).task.task_id
        await _read_until(proc, {"task "})
        proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(proc.communicate(), 20)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()[-2000:]
    t = await client.get_task(tid)
    # Handed back for another worker, not left leased to a process that is gone.
    assert t.status in (TaskStatus.READY, TaskStatus.PENDING) and not t.assigned_agent_id
    assert "worker shutting down" in t.last_error
    assert (await client.get_agent("sender")).current_task_count == 0


async def _registered(client: BrokerClient, agent_id: str) -> bool:
    try:
        await client.get_agent(agent_id)
        return True
    except NotFoundError:
        return False


async def _async(value: Any) -> Any:
    return value


def _retries(n: int, backoff: float = 1.0) -> Any:
    from a2a_broker_client import RetryPolicy

    return RetryPolicy(max_retries=n, initial_backoff=backoff, max_backoff=backoff)


async def test_stop_during_an_ack_call_still_acks(client, start_worker):
    # stop() ends the ack loop; an Ack call it cuts short must be sent again by the final flush.
    handled = asyncio.Event()
    ack_started = asyncio.Event()

    async def on_message(msg: Message) -> None:
        handled.set()

    w = await start_worker("acker", on_message=on_message)
    calls = 0

    async def slow_first(ack: Any, *args: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            ack_started.set()
            await asyncio.Event().wait()  # never answers: only cancellation ends it
        return await ack(*args)

    # Acks go on the message stream, or as a unary call once it is closed: either path counts.
    real_unary, real_on_stream = w.client.ack, w._on_stream
    w.client.ack = lambda *a: slow_first(real_unary, *a)  # type: ignore[method-assign]

    class Stream:
        def __init__(self, real: Any) -> None:
            self.real = real

        async def ack(self, ids: Any) -> Any:
            return await slow_first(self.real.ack, ids)

        async def ack_later(self, ids: Any) -> Any:  # the worker's usual ack: no confirmation
            return await slow_first(self.real.ack_later, ids)

    w._on_stream = lambda: Stream(real_on_stream())  # type: ignore[method-assign]
    mid = (await client.send("sender", "acker", "hi")).message_id
    await wait_for(handled, what="message handled")
    await wait_for(ack_started, what="the ack call")
    await w.stop(drain_timeout=2)
    assert calls == 2
    assert (await client.get_message(mid)).status == MessageStatus.PROCESSED
