"""TaskQueue benchmark (``make bench`` / ``python -m bench tasks``).

What it measures, each as the median of 3 runs on a fresh broker (a
subprocess with the default settings, so synchronous=FULL):

- whole cycle: 10 worker agents of capacity 10 hold a Listen stream each and
  Complete every assignment at once; 10,000 tasks are submitted (SubmitGraph
  batches of 100 independent tasks) while they work. Rate = tasks / time from
  the first submit to the last Complete answered. Target >= 1,500 tasks/s.
- hand-off: pairs P -> D submitted one at a time; the time from calling
  Complete(P) to D's assignment arriving on the Listen stream. Target p50 <= 5 ms.
- baseline: a bare grpc.aio unary echo (server in a subprocess too, 32 callers),
  so the cycle rate can be read as a ratio on this machine.
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc

from broker.pb import agents_pb2 as apb
from broker.pb import agents_pb2_grpc, tasks_pb2_grpc
from broker.pb import tasks_pb2 as pb

ROOT = Path(__file__).resolve().parent.parent
RUNS = 3
TASKS = 10_000
WORKERS = 10
CAPACITY = 10
BATCH = 100
SUBMITTERS = 2
HANDOFFS = 300
ECHO_SECONDS = 2.0
ECHO_CALLERS = 32
TARGET_RATE = 1500
TARGET_HANDOFF_MS = 5.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(proc: subprocess.Popen[bytes], port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("server did not start listening in time")


def start(
    args: list[str], port: int, env: dict[str, str] | None = None, log: Path | None = None
) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb") if log else subprocess.DEVNULL,
    )
    wait_listening(proc, port)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# ---------------------------------------------------------------- echo baseline


async def _echo_server(port: int) -> None:
    async def echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return request

    server = grpc.aio.server()
    handler = grpc.method_handlers_generic_handler(
        "bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(echo)}
    )
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


async def _echo_rate(address: str) -> float:
    async with grpc.aio.insecure_channel(address) as channel:
        call = channel.unary_unary("/bench.Echo/Echo")
        await call(b"warm-up")
        count = 0
        stop_at = time.perf_counter() + ECHO_SECONDS

        async def caller() -> None:
            nonlocal count
            payload = b"x" * 64
            while time.perf_counter() < stop_at:
                await call(payload)
                count += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(ECHO_CALLERS)))
        return count / (time.perf_counter() - t0)


def echo_baseline() -> float:
    port = free_port()
    proc = start(["-m", "bench.tasks", "--echo-server", str(port)], port)
    try:
        return asyncio.run(_echo_rate(f"127.0.0.1:{port}"))
    finally:
        stop(proc)


# ---------------------------------------------------------------- broker runs


class Broker:
    def __init__(self) -> None:
        self.dir = tempfile.TemporaryDirectory(prefix="a2a-bench-")
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        env = {
            "A2A_BROKER_ADDRESS": self.address,
            "A2A_BROKER_DB": str(Path(self.dir.name) / "bench.db"),
            "A2A_BROKER_LOG_LEVEL": "WARNING",
            "A2A_BROKER_LOG_FORMAT": "text",
        }
        self.log = Path(self.dir.name) / "broker.log"
        self.proc = start(["-m", "broker", "serve"], self.port, env, self.log)

    def close(self) -> None:
        stop(self.proc)
        errors = self.log.read_text(errors="replace").strip()
        if errors:
            print(f"  broker log:\n{errors[-3000:]}")
        self.dir.cleanup()


async def _register(channel: grpc.aio.Channel, prefix: str, n: int) -> list[str]:
    agents = agents_pb2_grpc.AgentRegistryStub(channel)
    ids = [f"{prefix}{i}" for i in range(n)]
    for agent_id in ids:
        await agents.Register(apb.RegisterRequest(agent_id=agent_id, max_concurrent_tasks=CAPACITY))
    return ids


async def _cycle(address: str) -> float:
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

        async def work(agent_id: str) -> None:
            async for resp in stub.Listen(pb.ListenRequest(agent_id=agent_id)):
                for a in resp.assignments:
                    t = asyncio.create_task(finish(agent_id, a))
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


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    print("[bench] tasks: whole cycle and hand-off latency (broker subprocess, synchronous=FULL)")
    t_start = time.perf_counter()
    echo = [echo_baseline() for _ in range(RUNS)]
    rates, p50s, p99s = [], [], []
    for run in range(RUNS):
        broker = Broker()
        try:
            rate = asyncio.run(_cycle(broker.address))
            lat = asyncio.run(_handoff(broker.address))
        finally:
            broker.close()
        rates.append(rate)
        p50s.append(percentile(lat, 0.50))
        p99s.append(percentile(lat, 0.99))
        print(
            f"  run {run + 1}: cycle {rate:,.0f} tasks/s, hand-off p50 {p50s[-1]:.2f} ms"
            f" p99 {p99s[-1]:.2f} ms, echo {echo[run]:,.0f} calls/s"
        )
    echo_m, rate_m = statistics.median(echo), statistics.median(rates)
    p50_m, p99_m = statistics.median(p50s), statistics.median(p99s)
    ok_rate = "met" if rate_m >= TARGET_RATE else "NOT met"
    ok_lat = "met" if p50_m <= TARGET_HANDOFF_MS else "NOT met"
    print(
        f"  echo baseline (grpc.aio unary, {ECHO_CALLERS} callers): {echo_m:,.0f} calls/s (median of {RUNS})"
    )
    print(
        f"  whole cycle ({TASKS:,} tasks, {WORKERS} workers x capacity {CAPACITY}): {rate_m:,.0f} tasks/s"
        f" (median of {RUNS}) = {rate_m / echo_m:.2f} x echo; target >= {TARGET_RATE:,}: {ok_rate}"
    )
    print(
        f"  hand-off Complete -> dependent on Listen ({HANDOFFS} pairs): p50 {p50_m:.2f} ms,"
        f" p99 {p99_m:.2f} ms (medians of {RUNS}); target p50 <= {TARGET_HANDOFF_MS:g} ms: {ok_lat}"
    )
    print(f"  ({time.perf_counter() - t_start:.0f} s)")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--echo-server":
        asyncio.run(_echo_server(int(sys.argv[2])))
    else:
        main()
