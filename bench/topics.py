"""Topics benchmark (``python -m bench topics``): publishing to a subject against the number of
subscriptions, matched or not, and one subscription drained by competing consumers.

Each case starts a fresh broker (its own process, SQLite file, synchronous=FULL) and:

- publish: ``Send`` to ``orders.eu.created`` with 64 calls in flight (256-byte payloads), with 1,
  100 and 10,000 subscriptions, (a) all matching the subject (each send stores the message once and
  one delivery row per subscription), and (b) one matching and the others not (``other.<i>.>``):
  the subject index finds the one without looking at the others, so (b) should cost about what
  one subscription costs, whatever the number of the others;
- drain: a backlog of 20,000 messages in one subscription (sent with ``SendBatch``), taken by 3
  competing consumers (Subscribe streams on the subscription, each response acked with ``Ack``).

Figures printed, nothing asserted. One run per case (the 10,000-subscription cases take a while).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from broker.pb import agents_pb2 as apb
from broker.pb import agents_pb2_grpc, messaging_pb2_grpc
from broker.pb import messaging_pb2 as pb

from .common import Report, channel, spawn_broker, unary_rate

PAYLOAD = b"x" * 256
SUBJECT = "orders.eu.created"
IN_FLIGHT = 64
SENDS = 3000  # per case (fewer when each send fans out to 10,000)
BACKLOG = 20_000
CONSUMERS = 3


async def _setup(
    address: str, subscriptions: int, matched: bool
) -> tuple[messaging_pb2_grpc.MessagingStub, float]:
    """The agents, and the subscriptions (made at what rate per second)."""
    ch = channel(address)
    agents = agents_pb2_grpc.AgentRegistryStub(ch)
    for agent in ["pub"] + [f"c{i}" for i in range(CONSUMERS)]:
        await agents.Register(apb.RegisterRequest(agent_id=agent, max_concurrent_tasks=1))
    msg = messaging_pb2_grpc.MessagingStub(ch)
    names = iter(range(subscriptions))

    async def create() -> None:
        i = next(names)
        flt = "orders.>" if matched or i == 0 else f"other.{i}.>"
        await msg.CreateSubscription(pb.CreateSubscriptionRequest(name=f"s{i}", filter=flt))

    return msg, await unary_rate(create, subscriptions, 32)


async def _publish(address: str, subscriptions: int, matched: bool) -> tuple[float, float, float]:
    """Sends per second, delivery rows written per second, subscriptions created per second."""
    msg, created = await _setup(address, subscriptions, matched)
    req = pb.SendRequest(sender_id="pub", target=pb.Target(subject=SUBJECT), payload=PAYLOAD)

    async def send() -> None:
        await msg.Send(req)

    for _ in range(5):  # the first send after the subscriptions were made builds the index
        await send()
    fan = subscriptions if matched else 1
    n = SENDS if fan == 1 else max(10, SENDS * 10 // fan)  # about the same number of rows
    rate = await unary_rate(send, n, IN_FLIGHT)
    return rate, rate * fan, created


async def _drain(address: str) -> float:
    """Messages per second taken and acked by CONSUMERS competing consumers of one subscription."""
    msg, _ = await _setup(address, 1, True)
    for start in range(0, BACKLOG, 500):
        await msg.SendBatch(
            pb.SendBatchRequest(
                messages=[
                    pb.SendRequest(sender_id="pub", target=pb.Target(subject=SUBJECT), payload=PAYLOAD)
                    for _ in range(min(500, BACKLOG - start))
                ]
            )
        )
    done = asyncio.Event()
    taken = 0

    async def consumer(agent: str) -> None:
        nonlocal taken
        call = msg.Subscribe(pb.SubscribeRequest(agent_id=agent, subscription="s0", max_in_flight=500))
        try:
            async for resp in call:
                ids = [m.message_id for m in resp.messages]
                await msg.Ack(pb.AckRequest(agent_id=agent, message_ids=ids))
                taken += len(ids)
                if taken >= BACKLOG:
                    done.set()
        finally:
            call.cancel()

    t0 = time.perf_counter()
    tasks = [asyncio.ensure_future(consumer(f"c{i}")) for i in range(CONSUMERS)]
    await asyncio.wait_for(done.wait(), 300)
    elapsed = time.perf_counter() - t0
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return BACKLOG / elapsed


def _case(fn, *args) -> tuple[float, ...] | float:  # type: ignore[no-untyped-def]
    with tempfile.TemporaryDirectory() as d, spawn_broker(Path(d) / "a2a.db") as broker:
        return asyncio.run(fn(broker.address, *args))  # type: ignore[no-any-return]


def main() -> None:
    report = Report(
        f"Topics (SQLite, synchronous=FULL; Send {IN_FLIGHT} in flight, {len(PAYLOAD)}-byte payloads;"
        " one run per case)"
    )
    for n in (1, 100, 10_000):
        for matched in (True, False):
            if n == 1 and not matched:
                continue
            rate, rows, created = _case(_publish, n, matched)  # type: ignore[misc]
            what = f"all {n:,} match" if matched else f"1 matches, {n - 1:,} do not"
            report.add(f"publish, {n:,} subscription(s), {what}", rate, "sends/s")
            if matched and n > 1:
                report.add("  deliveries stored", rows, "rows/s")
            if n == 10_000 and matched:
                report.add("  CreateSubscription (32 in flight)", created, "calls/s")
            print(f"  [topics] {n} subscriptions, matched={matched}: {rate:,.0f} sends/s", flush=True)
    drain = _case(_drain)
    report.add(f"drain of {BACKLOG:,} by {CONSUMERS} competing consumers", drain, "msgs/s")  # type: ignore[arg-type]
    report.print()


if __name__ == "__main__":
    main()
