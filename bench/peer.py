"""The benchmark's other processes, as peers measure (a subscriber or a worker is never in the
sender's process or event loop):

    python -m bench.peer subscriber ADDRESS AGENT TOTAL WARMUP [WINDOW_S]
        Consume AGENT's messages with acks on the stream (one ack request per delivery response);
        each payload starts with its send time (CLOCK_MONOTONIC ns, the same clock in every
        process of the machine). Prints "ready" once the stream is live, then, after TOTAL
        messages, one JSON line: {"p50": ms, "p99": ms} over those after the first WARMUP; with
        WINDOW_S, also "first_p50" and "last_p50": the p50 of the messages sent in the first and
        in the last WINDOW_S seconds of those.

    python -m bench.peer worker ADDRESS AGENT CAPACITY MODE [CAPABILITY]
        Register AGENT with CAPACITY (and CAPABILITY) and finish every assignment at once: MODE
        "work" completes on the Work stream (in-band), "unary" listens and calls Complete per task.
        Prints "ready" once the stream is live, then "done N" (N tasks completed so far) every 100
        completions and whenever the stream goes idle.
"""

from __future__ import annotations

import asyncio
import json
import struct
import sys
import time

import grpc
from a2a_broker_client import run

from broker.pb import agents_pb2 as apb
from broker.pb import agents_pb2_grpc, messaging_pb2_grpc, tasks_pb2_grpc
from broker.pb import messaging_pb2 as pb
from broker.pb import tasks_pb2 as tpb

from .common import channel, percentile


def now_ns() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def stamp(payload: bytes) -> bytes:
    """``payload`` with the send time in its first 8 bytes."""
    return struct.pack("<q", now_ns()) + payload[8:]


async def subscriber(
    address: str, agent: str, total: int, warmup: int, window_s: float = 0.0, no_confirm: bool = False
) -> None:
    async with channel(address) as ch:
        msg = messaging_pb2_grpc.MessagingStub(ch)
        call = msg.Consume()
        await call.write(
            pb.ConsumeRequest(
                subscribe=pb.SubscribeRequest(agent_id=agent, max_in_flight=1000, max_batch=100)
            )
        )
        await call.initial_metadata()
        print("ready", flush=True)
        lat: list[float] = []
        sent_at: list[int] = []
        seq = 0
        async for resp in call:
            if not resp.messages:
                continue
            now = now_ns()
            for m in resp.messages:
                (sent,) = struct.unpack("<q", m.payload[:8])
                lat.append((now - sent) / 1e6)
                sent_at.append(sent)
            seq += 1
            ids = [m.message_id for m in resp.messages]
            await call.write(pb.ConsumeRequest(sequence=seq, ack_ids=ids, no_confirm=no_confirm))
            if len(lat) >= total:
                break
        call.cancel()
        measured = lat[warmup:]
        out = {"p50": percentile(measured, 50), "p99": percentile(measured, 99)}
        if window_s:
            times = sent_at[warmup:]
            first, last, w = min(times), max(times), window_s * 1e9
            pairs = list(zip(measured, times, strict=True))
            out["first_p50"] = percentile([x for x, t in pairs if t < first + w], 50)
            out["last_p50"] = percentile([x for x, t in pairs if t > last - w], 50)
        print(json.dumps(out), flush=True)


async def worker(address: str, agent: str, capacity: int, mode: str, capabilities: list[str]) -> None:
    async with channel(address) as ch:
        agents = agents_pb2_grpc.AgentRegistryStub(ch)
        tasks = tasks_pb2_grpc.TaskQueueStub(ch)
        await agents.Register(
            apb.RegisterRequest(agent_id=agent, max_concurrent_tasks=capacity, capabilities=capabilities)
        )
        done = 0
        loop = asyncio.get_running_loop()
        idle: asyncio.TimerHandle | None = None

        def report() -> None:
            print(f"done {done}", flush=True)

        def count(n: int) -> None:
            nonlocal done, idle
            before = done
            done += n
            if done // 100 != before // 100:
                report()
            if idle is not None:
                idle.cancel()
            idle = loop.call_later(0.2, report)  # the last count, once the work stops

        if mode in ("work", "batched"):
            call = tasks.Work()
            await call.write(tpb.WorkRequest(listen=tpb.ListenRequest(agent_id=agent)))
            await call.initial_metadata()
            print("ready", flush=True)
            seq = 0
            async for resp in call:
                done_now = [
                    tpb.CompleteRequest(task_id=a.task.task_id, attempt=a.attempt) for a in resp.assignments
                ]
                if mode == "batched" and len(done_now) > 1:  # what is ready: one request
                    seq += 1
                    outcomes = [tpb.WorkOutcome(complete=x) for x in done_now]
                    await call.write(tpb.WorkRequest(sequence=seq, outcomes=outcomes))
                else:
                    for x in done_now:
                        seq += 1
                        await call.write(tpb.WorkRequest(sequence=seq, complete=x))
                if resp.HasField("confirm"):
                    assert resp.confirm.code == 0, resp.confirm.error
                    for r in resp.confirm.results:
                        assert r.code == 0, r.error
                    count(len(resp.confirm.results) or 1)
            return
        call2 = tasks.Listen(tpb.ListenRequest(agent_id=agent))
        await call2.initial_metadata()
        print("ready", flush=True)
        pending: set[asyncio.Task[None]] = set()

        async def finish(a: tpb.Assignment) -> None:
            await tasks.Complete(
                tpb.CompleteRequest(task_id=a.task.task_id, agent_id=agent, attempt=a.attempt)
            )
            count(1)

        async for resp in call2:
            for a in resp.assignments:
                t = asyncio.ensure_future(finish(a))
                pending.add(t)
                t.add_done_callback(pending.discard)


def main() -> None:
    role, address, *rest = sys.argv[1:]
    try:
        if role == "subscriber":
            extra = rest[3:]
            no_confirm = "no-confirm" in extra
            window = next((float(x) for x in extra if x != "no-confirm"), 0.0)
            # on uvloop unless told otherwise
            run(subscriber(address, rest[0], int(rest[1]), int(rest[2]), window, no_confirm))
        elif role == "worker":
            run(worker(address, rest[0], int(rest[1]), rest[2], rest[3:]))
        else:
            raise SystemExit(f"unknown role {role!r}: subscriber or worker")
    except (KeyboardInterrupt, grpc.aio.AioRpcError):
        pass


if __name__ == "__main__":
    main()
