"""TaskQueue benchmark (``make bench`` / ``python -m bench tasks``).

What it measures, each as the median of 3 runs on a fresh broker (a
subprocess, synchronous=FULL), beside a bare grpc.aio echo server measured in
the same run (bench/common.py, bench/echo.py), so each figure also reads as a
ratio on whatever machine runs it:

- whole cycle: 10 worker agents of capacity 10 hold a Listen stream each and
  Complete every assignment at once; 10,000 tasks are submitted (SubmitGraph
  batches of 100 independent tasks) while they work. Rate = tasks / time from
  the first submit to the last Complete answered. Target >= 1,500 tasks/s.
  Also the broker's CPU per task (all its threads), which depends less on
  what else the machine is doing than the rate does.
- the same whole cycle with workers that complete each Listen push (up to
  their capacity of assignments) with one CompleteBatch call instead of one
  Complete per task, as a busy worker would.
- hand-off: pairs P -> D submitted one at a time; the time from calling
  Complete(P) to D's assignment arriving on the Listen stream. Target p50 <= 5 ms.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import grpc

from bench.common import Report, echo_baseline, median, percentile, spawn_broker, spawn_echo
from broker.pb import agents_pb2 as apb
from broker.pb import agents_pb2_grpc, tasks_pb2_grpc
from broker.pb import tasks_pb2 as pb

RUNS = 3
TASKS = 10_000
WORKERS = 10
CAPACITY = 10
BATCH = 100
SUBMITTERS = 2
HANDOFFS = 300
TARGET_RATE = 1500
TARGET_HANDOFF_MS = 5.0


async def _register(channel: grpc.aio.Channel, prefix: str, n: int) -> list[str]:
    agents = agents_pb2_grpc.AgentRegistryStub(channel)
    ids = [f"{prefix}{i}" for i in range(n)]
    for agent_id in ids:
        await agents.Register(apb.RegisterRequest(agent_id=agent_id, max_concurrent_tasks=CAPACITY))
    return ids


async def _cycle(address: str, batched: bool) -> float:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = tasks_pb2_grpc.TaskQueueStub(channel)
        workers = await _register(channel, "w", WORKERS)
        done = 0
        all_done = asyncio.Event()
        pending: set[asyncio.Task[None]] = set()

        async def finish(agent_id: str, a: pb.Assignment) -> None:
            nonlocal done
            await stub.Complete(
                pb.CompleteRequest(task_id=a.task.task_id, agent_id=agent_id, attempt=a.attempt)
            )
            done += 1
            if done == TASKS:
                all_done.set()

        async def finish_batch(agent_id: str, batch: list[pb.Assignment]) -> None:
            nonlocal done
            items = [
                pb.CompleteRequest(task_id=a.task.task_id, agent_id=agent_id, attempt=a.attempt)
                for a in batch
            ]
            resp = await stub.CompleteBatch(pb.CompleteBatchRequest(items=items))
            assert all(r.code == 0 for r in resp.results), resp.results
            done += len(items)
            if done == TASKS:
                all_done.set()

        async def work(agent_id: str) -> None:
            async for resp in stub.Listen(pb.ListenRequest(agent_id=agent_id)):
                if batched:
                    jobs = [finish_batch(agent_id, list(resp.assignments))] if resp.assignments else []
                else:
                    jobs = [finish(agent_id, a) for a in resp.assignments]
                for job in jobs:
                    t = asyncio.create_task(job)
                    pending.add(t)
                    t.add_done_callback(pending.discard)

        streams = [asyncio.create_task(work(w)) for w in workers]
        await asyncio.sleep(0.3)  # let the streams open before the clock starts

        async def submit(batches: range) -> None:
            for b in batches:
                nodes = [
                    pb.GraphNode(key=str(i), task=pb.TaskSpec(title=f"bench {b}.{i}", payload=b"x" * 32))
                    for i in range(BATCH)
                ]
                await stub.SubmitGraph(pb.SubmitGraphRequest(nodes=nodes))

        n_batches = TASKS // BATCH
        t0 = time.perf_counter()
        await asyncio.gather(*(submit(range(k, n_batches, SUBMITTERS)) for k in range(SUBMITTERS)))
        await asyncio.wait_for(all_done.wait(), 120)
        elapsed = time.perf_counter() - t0
        for s in streams:
            s.cancel()
        await asyncio.gather(*streams, return_exceptions=True)
        return TASKS / elapsed


async def _handoff(address: str) -> list[float]:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = tasks_pb2_grpc.TaskQueueStub(channel)
        (agent_id,) = await _register(channel, "h", 1)
        arrivals: asyncio.Queue[tuple[float, pb.Assignment]] = asyncio.Queue()
        failed: list[BaseException] = []

        async def listen() -> None:
            try:
                async for resp in stub.Listen(pb.ListenRequest(agent_id=agent_id)):
                    now = time.perf_counter()
                    for a in resp.assignments:
                        arrivals.put_nowait((now, a))
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.CANCELLED:
                    failed.append(exc)
                    raise

        async def next_assignment() -> tuple[float, pb.Assignment]:
            try:
                return await asyncio.wait_for(arrivals.get(), 10)
            except TimeoutError:
                raise RuntimeError(f"no assignment within 10 s (stream errors: {failed})") from None

        stream = asyncio.create_task(listen())
        latencies = []
        for i in range(HANDOFFS):
            g = await stub.SubmitGraph(
                pb.SubmitGraphRequest(
                    nodes=[
                        pb.GraphNode(key="p", task=pb.TaskSpec(title=f"p{i}")),
                        pb.GraphNode(
                            key="d",
                            task=pb.TaskSpec(title=f"d{i}"),
                            depends_on_keys=[pb.GraphDependency(key="p")],
                        ),
                    ]
                )
            )
            _, p = await next_assignment()
            assert p.task.task_id == g.task_ids["p"]
            t0 = time.perf_counter()
            await stub.Complete(
                pb.CompleteRequest(task_id=p.task.task_id, agent_id=agent_id, attempt=p.attempt)
            )
            arrived, d = await next_assignment()
            assert d.task.task_id == g.task_ids["d"]
            latencies.append((arrived - t0) * 1000)
            await stub.Complete(
                pb.CompleteRequest(task_id=d.task.task_id, agent_id=agent_id, attempt=d.attempt)
            )
        stream.cancel()
        await asyncio.gather(stream, return_exceptions=True)
        return latencies


def one_run() -> tuple[float, float, float, list[float]]:
    """(tasks/s with Complete per task, broker CPU us per task, tasks/s with CompleteBatch per push,
    hand-off latencies ms), each cycle on a fresh broker."""
    with tempfile.TemporaryDirectory(prefix="a2a-bench-tasks-") as tmp:
        with spawn_broker(Path(tmp) / "bench.db") as broker:
            cpu0 = broker.cpu_s()
            rate = asyncio.run(_cycle(broker.address, batched=False))
            cpu_us = (broker.cpu_s() - cpu0) / TASKS * 1e6
            latencies = asyncio.run(_handoff(broker.address))
        with spawn_broker(Path(tmp) / "bench-batched.db") as broker:
            batched_rate = asyncio.run(_cycle(broker.address, batched=True))
    return rate, cpu_us, batched_rate, latencies


def main() -> None:
    t_start = time.perf_counter()
    echo, rates, cpus, p50s, p99s, batched = [], [], [], [], [], []
    for run in range(RUNS):
        with spawn_echo() as server:
            echo.append(asyncio.run(echo_baseline(server.address)))
        rate, cpu_us, batched_rate, lat = one_run()
        rates.append(rate)
        batched.append(batched_rate)
        cpus.append(cpu_us)
        p50s.append(percentile(lat, 50))
        p99s.append(percentile(lat, 99))
        print(
            f"  [tasks] run {run + 1}: cycle {rate:,.0f} tasks/s ({cpu_us:,.0f} us broker CPU per task),"
            f" with CompleteBatch {batched_rate:,.0f} tasks/s,"
            f" hand-off p50 {p50s[-1]:.2f} ms p99 {p99s[-1]:.2f} ms,"
            f" echo {echo[-1]['unary_per_s']:,.0f} calls/s",
            flush=True,
        )
    unary = median([e["unary_per_s"] for e in echo])
    rtt = median([e["round_trip_ms"] for e in echo])
    rate_m, p50_m = median(rates), median(p50s)
    report = Report(f"TaskQueue (medians of {RUNS} runs; broker subprocess, synchronous=FULL)")
    report.add(
        f"whole cycle, {TASKS:,} tasks, {WORKERS} workers x capacity {CAPACITY}",
        rate_m,
        "tasks/s",
        unary,
        f">= {TARGET_RATE:,}: {'met' if rate_m >= TARGET_RATE else 'NOT met'}",
    )
    report.add("broker CPU per task (all threads)", median(cpus), "us")
    batched_m = median(batched)
    report.add(
        "whole cycle, same, workers completing each push with one CompleteBatch",
        batched_m,
        "tasks/s",
        unary,
        f">= {TARGET_RATE:,}: {'met' if batched_m >= TARGET_RATE else 'NOT met'}",
    )
    report.add(
        f"hand-off Complete -> dependent on Listen, p50 ({HANDOFFS} pairs)",
        p50_m,
        "ms",
        rtt,
        f"p50 <= {TARGET_HANDOFF_MS:g} ms: {'met' if p50_m <= TARGET_HANDOFF_MS else 'NOT met'}",
        lower_better=True,
    )
    report.add("hand-off p99", median(p99s), "ms", rtt, lower_better=True)
    report.add("bare gRPC unary echo (64 in flight)", unary, "calls/s")
    report.add("bare gRPC unary round trip (1 in flight)", rtt, "ms")
    report.note(f"({time.perf_counter() - t_start:.0f} s)")
    report.print()


if __name__ == "__main__":
    main()
