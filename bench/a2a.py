"""The A2A gateway's cost: a blocking A2A SendMessage (a2a-sdk's client) against the same work on
the broker's own API (Submit, then Watch until completed), in the same runs.

Broker in its own process (synchronous=FULL), one worker process (bench/peer.py, Listen + unary
Complete) with the capability "echo", the measuring client in this process; one call in flight,
so each figure is a round trip: send -> the worker's lease -> its completion -> the caller told.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from pathlib import Path

import grpc
from a2a.client import ClientConfig, ClientFactory, minimal_agent_card
from a2a.types import a2a_pb2 as a2a

from broker.pb import tasks_pb2 as tpb
from broker.pb import tasks_pb2_grpc

from .common import Report, median, percentile, spawn_broker, start_peer

RUNS = 3
CALLS = 300
WARMUP = 30


async def _run(address: str) -> dict[str, float]:
    worker = await start_peer("worker", address, "echo-worker", "4", "unary", "echo")
    try:
        config = ClientConfig(
            streaming=False,
            grpc_channel_factory=lambda url: grpc.aio.insecure_channel(url.split("://")[-1]),
            supported_protocol_bindings=["GRPC"],
        )
        client = ClientFactory(config).create(minimal_agent_card(f"grpc://{address}", ["GRPC"]))

        async def via_a2a() -> None:
            m = a2a.Message(message_id=str(uuid.uuid4()), role=a2a.ROLE_USER)
            m.parts.add(text="ping")
            m.metadata.update({"skill": "echo"})
            async for event in client.send_message(a2a.SendMessageRequest(message=m)):
                assert event.task.status.state == a2a.TASK_STATE_COMPLETED, event

        async with grpc.aio.insecure_channel(address) as ch:
            tasks = tasks_pb2_grpc.TaskQueueStub(ch)

            async def native() -> None:
                spec = tpb.TaskSpec(title="ping", required_capabilities=["echo"])
                task = (await tasks.Submit(tpb.SubmitRequest(task=spec))).task
                watch = tasks.Watch(tpb.WatchTasksRequest(task_id=task.task_id, include_snapshot=True))
                async for ev in watch:
                    if ev.task.status == tpb.TASK_STATUS_COMPLETED:
                        break
                watch.cancel()

            out: dict[str, float] = {}
            for name, call in (("native", native), ("a2a", via_a2a)):
                lat = []
                for i in range(CALLS + WARMUP):
                    t0 = time.perf_counter()
                    await call()
                    if i >= WARMUP:
                        lat.append((time.perf_counter() - t0) * 1000)
                out[f"{name}_p50"], out[f"{name}_p99"] = percentile(lat, 50), percentile(lat, 99)
            return out
    finally:
        worker.kill()
        await worker.wait()


def main() -> None:
    t_start = time.perf_counter()
    runs = []
    for run in range(RUNS):
        with tempfile.TemporaryDirectory() as d, spawn_broker(Path(d) / "a2a.db") as broker:
            r = asyncio.run(_run(broker.address))
        runs.append(r)
        print(
            f"  [a2a] run {run + 1}: A2A p50 {r['a2a_p50']:.2f} ms p99 {r['a2a_p99']:.2f} ms;"
            f" native p50 {r['native_p50']:.2f} ms p99 {r['native_p99']:.2f} ms",
            flush=True,
        )

    def med(key: str) -> float:
        return median([r[key] for r in runs])

    ratio = median([r["a2a_p50"] / r["native_p50"] for r in runs])
    report = Report(f"A2A gateway (medians of {RUNS} runs of {CALLS} round trips, one in flight)")
    report.add("A2A SendMessage (blocking), p50", med("a2a_p50"), "ms")
    report.add("A2A SendMessage (blocking), p99", med("a2a_p99"), "ms")
    report.add("Submit + Watch until completed, p50", med("native_p50"), "ms")
    report.add("Submit + Watch until completed, p99", med("native_p99"), "ms")
    report.note(f"A2A p50 / native p50, per run then the median: {ratio:.2f}x")
    report.note(f"({time.perf_counter() - t_start:.0f} s)")
    report.print()


if __name__ == "__main__":
    main()
