"""Crash safety: SIGKILL the broker (a subprocess, synchronous=FULL) while messages are being
sent, delivered and acked; after a restart on the same file every message whose Send was answered
arrives, and no message whose Ack was answered is delivered again."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from broker.pb import messaging_pb2 as pb
from tests.conftest import stubs_for
from tests.integration.messaging_support import Sub, ack, register

# Under pytest -n (make test) the SIGKILL tests run one after another on one worker.
pytestmark = pytest.mark.xdist_group("crash")
TARGET = 2000


async def test_sigkill_loses_no_acknowledged_message(broker_process, tmp_path):
    proc = broker_process(tmp_path / "crash.db", A2A_BROKER_SQLITE_SYNCHRONOUS="FULL")
    proc.start()
    stubs = stubs_for(proc.address)
    sent: set[str] = set()  # Send answered OK: committed
    acked: set[str] = set()  # Ack answered OK: processed
    before: set[str] = set()  # delivered before the crash
    killed = asyncio.Event()
    ready = asyncio.Event()  # enough sent and acked: time to crash

    def progress() -> None:
        if len(sent) >= TARGET and len(acked) >= TARGET // 2:
            ready.set()

    try:
        await register(stubs, "alice")
        await register(stubs, "bob")
        sub = await Sub.open(stubs, "bob", max_in_flight=50, max_batch=25, ack_deadline={"seconds": 60})

        async def sender(i: int) -> None:
            n = 0
            while not killed.is_set():
                try:
                    r = await stubs.messaging.Send(
                        pb.SendRequest(
                            sender_id="alice", target=pb.Target(agent_id="bob"), payload=b"%d-%d" % (i, n)
                        )
                    )
                except grpc.aio.AioRpcError:
                    return  # the broker died under this call: not acknowledged, proves nothing
                sent.add(r.message_ids[0])
                progress()
                n += 1

        async def consumer() -> None:
            while not killed.is_set():
                try:
                    batch = await sub.batch(timeout=0.5)
                except AssertionError:
                    continue
                ids = [m.message_id for m in batch]
                before.update(ids)
                if len(acked) < TARGET // 2:  # ack the first half, then hold the rest unacked
                    try:
                        await ack(stubs, "bob", ids)
                    except grpc.aio.AioRpcError:
                        return
                    acked.update(ids)
                    progress()

        async def killer() -> None:
            await ready.wait()
            proc.kill()  # SIGKILL, with sends and deliveries in flight
            killed.set()

        tasks = [asyncio.ensure_future(sender(i)) for i in range(16)]
        tasks += [asyncio.ensure_future(consumer())]
        await asyncio.wait_for(killer(), 40)
        await asyncio.wait_for(asyncio.gather(*tasks), 10)
        sub.cancel()
    finally:
        await stubs.channel.close()
    assert len(sent) >= TARGET and len(acked) >= TARGET // 2
    unacked_deliveries = before - acked
    assert unacked_deliveries, "the crash should leave deliveries in flight"

    if proc.proc is not None and proc.proc.stderr is not None:
        proc.proc.stderr.close()  # start() below replaces the process object
    proc.start()  # same file, same port
    stubs = stubs_for(proc.address)
    try:
        # wait_for_ready: the new channel shares gRPC's subchannel to this address, which still
        # remembers the refused connections of the crash and would fail the call at once.
        sub = await Sub.open(stubs, "bob", max_in_flight=1000, max_batch=500, wait_for_ready=True)
        expected = sent - acked
        after: list[str] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while True:
            # Until every expected message came, then until the stream is quiet: sends cut off by
            # the crash may have been committed without their answer, and arrive too.
            try:
                batch = await sub.batch(timeout=0.5 if expected <= set(after) else 5)
            except AssertionError:
                if expected <= set(after):
                    break
                assert loop.time() < deadline, f"missing {len(expected - set(after))} of {len(expected)}"
                continue
            after += [m.message_id for m in batch]
            await ack(stubs, "bob", [m.message_id for m in batch])
        sub.cancel()
    finally:
        await stubs.channel.close()
    got = set(after)
    assert not got & acked, "an acknowledged message was delivered again"
    assert expected <= got
    assert len(after) == len(got), "delivered twice after the restart"
    # Deliveries unacked at the crash come again (duplicates, allowed); they are counted here.
    duplicates = got & before
    assert unacked_deliveries & sent <= duplicates
    print(
        f"sent {len(sent)}, acked before the crash {len(acked)}, redelivered after it "
        f"{len(got)} (of which {len(duplicates)} duplicates of deliveries unacked at the crash)"
    )
