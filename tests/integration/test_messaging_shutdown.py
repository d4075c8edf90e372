"""Shutdown of the messaging side: an Ack answered OK sticks across the restart (or the Ack is
refused UNAVAILABLE), in-flight Sends end OK or UNAVAILABLE, and deliveries are released before
storage closes."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import grpc

from broker.pb import messaging_pb2 as pb
from broker.pb import messaging_pb2_grpc as pb_grpc
from broker.server import start_server

from ..conftest import make_settings, stubs_for
from .messaging_support import Sub, register, send


async def test_an_ack_answered_ok_during_shutdown_sticks_after_the_restart(tmp_path):
    settings = make_settings(tmp_path, shutdown_grace_s=2.0)
    b = await start_server(settings)
    stubs = stubs_for(b.address)
    n = 50
    try:
        await register(stubs, "alice")
        await register(stubs, "bob")
        ids = [await send(stubs, "alice", "bob", b"m%d" % i) for i in range(n)]
        sub = await Sub.open(stubs, "bob", ack_deadline={"seconds": 3600})
        got = [m.message_id for m in await sub.take(n)]
        assert sorted(got) == sorted(ids)

        async def ack_one(mid: str) -> grpc.StatusCode:
            try:
                await stubs.messaging.Ack(pb.AckRequest(agent_id="bob", message_ids=[mid]), timeout=10)
            except grpc.aio.AioRpcError as err:
                return err.code()
            return grpc.StatusCode.OK

        stop = asyncio.ensure_future(b.stop())
        outcomes: dict[str, grpc.StatusCode] = {}
        for mid in got:  # one Ack after the other, from before the stop began until it refuses them
            outcomes[mid] = await ack_one(mid)
        await asyncio.wait_for(stop, 15)
        sub.cancel()
    finally:
        await stubs.channel.close()
    assert set(outcomes.values()) <= {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE}, outcomes

    b = await start_server(settings)
    stubs = stubs_for(b.address)
    try:
        for mid, code in outcomes.items():
            m = await stubs.messaging.GetMessage(pb.GetMessageRequest(message_id=mid))
            if code == grpc.StatusCode.OK:
                assert m.status == pb.MESSAGE_STATUS_PROCESSED, (mid, m)
            else:
                assert m.status == pb.MESSAGE_STATUS_PENDING and m.attempt == 0, (mid, m)
    finally:
        await stubs.channel.close()
        await b.stop(0.2)


async def test_sends_in_flight_at_shutdown_end_ok_or_unavailable_and_only_ok_ones_are_stored(tmp_path):
    settings = make_settings(tmp_path, shutdown_grace_s=2.0)
    b = await start_server(settings)
    stubs = stubs_for(b.address)
    codes: list[grpc.StatusCode] = []
    stored: list[str] = []
    started = asyncio.Event()
    try:
        await register(stubs, "alice")
        await register(stubs, "bob")

        async def sender(k: int) -> None:
            i = 0
            while True:
                try:
                    r = await stubs.messaging.Send(
                        pb.SendRequest(
                            sender_id="alice", target=pb.Target(agent_id="bob"), payload=b"%d" % i
                        ),
                        timeout=10,
                    )
                except grpc.aio.AioRpcError as err:
                    codes.append(err.code())
                    return
                codes.append(grpc.StatusCode.OK)
                stored.append(r.message_ids[0])
                i += 1
                if len(stored) >= 100:
                    started.set()

        senders = [asyncio.ensure_future(sender(k)) for k in range(20)]
        await asyncio.wait_for(started.wait(), 10)
        await asyncio.wait_for(b.stop(), 15)
        await asyncio.wait_for(asyncio.gather(*senders), 15)
    finally:
        await stubs.channel.close()
    assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE}, set(codes)

    b = await start_server(settings)
    stubs = stubs_for(b.address)
    try:
        r = await stubs.messaging.ListMessages(pb.ListMessagesRequest(page_size=1000))
        ids = [m.message_id for m in r.messages]
        while r.next_page_token:
            r = await stubs.messaging.ListMessages(
                pb.ListMessagesRequest(page_size=1000, page_token=r.next_page_token)
            )
            ids += [m.message_id for m in r.messages]
        assert sorted(ids) == sorted(stored)
    finally:
        await stubs.channel.close()
        await b.stop(0.2)


async def test_a_stream_blocked_in_a_write_at_the_end_of_the_grace_has_its_deliveries_released(
    tmp_path, caplog
):

    settings = make_settings(tmp_path, shutdown_grace_s=0.3)
    b = await start_server(settings)
    stubs = stubs_for(b.address)
    try:
        await register(stubs, "alice")
        await register(stubs, "bob")
        for _ in range(40):
            await send(stubs, "alice", "bob", b"x" * (512 * 1024))
        # Subscribed, never read, on a channel that keeps its flow-control window at 64 KiB:
        # the broker's writes block.
        slow = grpc.aio.insecure_channel(b.address, options=[("grpc.http2.bdp_probe", 0)])
        call = pb_grpc.MessagingStub(slow).Subscribe(pb.SubscribeRequest(agent_id="bob", max_batch=1))
        await asyncio.wait_for(call.initial_metadata(), 5)

        async def delivered() -> int:
            r = await stubs.messaging.ListMessages(
                pb.ListMessagesRequest(status=pb.MESSAGE_STATUS_DELIVERED, page_size=1000)
            )
            return len(r.messages)

        from ..conftest import eventually

        await eventually(delivered, what="deliveries on the stream")
        await asyncio.wait_for(b.stop(), 15)
        call.cancel()
        await slow.close()
    finally:
        await stubs.channel.close()
    assert "could not release" not in caplog.text
    b = await start_server(settings)  # read back through the API, after the restart
    stubs = stubs_for(b.address)
    rows: Counter[tuple[int, int]] = Counter()
    try:
        token = ""
        while True:  # small pages: the payloads are large
            r = await stubs.messaging.ListMessages(pb.ListMessagesRequest(page_size=4, page_token=token))
            rows.update((m.status, m.attempt) for m in r.messages)
            if not (token := r.next_page_token):
                break
    finally:
        await stubs.channel.close()
        await b.stop(0.2)
    assert rows == {(pb.MESSAGE_STATUS_PENDING, 0): 40}, rows


async def test_a_client_retrying_sends_does_not_hold_a_graceful_shutdown_for_the_grace(
    broker_process: Any,
) -> None:
    """#22.20: a refused Send (the broker is stopping) is no activity: the drain's quiet period is
    not restarted by it, so SIGTERM to exit stays far under the 5 s grace."""
    proc = broker_process(A2A_BROKER_SHUTDOWN_GRACE_S="5")
    proc.start()
    stubs = stubs_for(proc.address)
    sent = asyncio.Event()
    stop = asyncio.Event()
    try:
        await register(stubs, "alice")
        await register(stubs, "bob")

        async def retrying() -> None:
            req = pb.SendRequest(sender_id="alice", target=pb.Target(agent_id="bob"), payload=b"x")
            while not stop.is_set():
                try:
                    await stubs.messaging.Send(req, timeout=2)
                    sent.set()
                except grpc.aio.AioRpcError:
                    await asyncio.sleep(0.005)  # and at once again, as a client with a short backoff

        senders = [asyncio.ensure_future(retrying()) for _ in range(4)]
        await asyncio.wait_for(sent.wait(), 10)
        assert proc.proc is not None
        t0 = time.monotonic()
        proc.proc.terminate()
        code = await asyncio.to_thread(proc.proc.wait, 15)
        took = time.monotonic() - t0
        stop.set()
        await asyncio.gather(*senders)
    finally:
        stop.set()
        await stubs.channel.close()
    assert code == 0
    assert took < 2.0, f"SIGTERM to exit took {took:.2f}s with a 5 s grace"
