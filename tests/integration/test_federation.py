"""Federation across brokers in their own processes, each with its own SQLite file: a broker
joins its peers as an agent of type "broker" and runs their tasks with its own agents."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from a2a_broker_client import BrokerClient, MessageStatus, RetryPolicy, Target, TaskStatus

from tests.conftest import eventually

FAST = {
    "A2A_BROKER_HTTP_ADDRESS": "off",
    "A2A_BROKER_SWEEPER_PERIOD_S": "0.1",
    "A2A_BROKER_FEDERATION_REFRESH_S": "0.2",
    "A2A_BROKER_FEDERATION_EXTEND_S": "0.5",
}


def start(broker_process: Any, tmp_path: Path, name: str, peers: str = "", **env: str) -> Any:
    b = broker_process(
        tmp_path / f"{name}.db", A2A_BROKER_BROKER_ID=name, A2A_BROKER_PEERS=peers, **FAST, **env
    )
    b.start()
    return b


async def link_offers(client: BrokerClient, broker_id: str, caps: list[str]) -> None:
    async def ready() -> bool:
        agents = {a.agent_id: a async for a in client.iter_agents()}
        link = agents.get(f"broker.{broker_id}")
        return link is not None and list(link.capabilities) == caps

    await eventually(ready, timeout=10, what=f"broker {broker_id} offering {caps}")


async def status(client: BrokerClient, task_id: str) -> TaskStatus:
    return (await client.get_task(task_id)).status


async def test_a_task_runs_on_the_peer_whose_agents_have_the_capability_and_reports_back(
    broker_process, tmp_path
):
    a = start(broker_process, tmp_path, "a")
    b = start(broker_process, tmp_path, "b", peers=f"a={a.address}")
    async with BrokerClient(a.address, timeout=10) as on_a, BrokerClient(b.address, timeout=10) as on_b:
        await on_b.register("wb", capabilities=["x"], max_concurrent_tasks=1)
        await link_offers(on_a, "b", ["x"])
        link = await on_a.get_agent("broker.b")
        assert (link.agent_type, link.max_concurrent_tasks) == ("broker", 1)  # B's capacity

        task = (await on_a.submit("translate", required_capabilities=["x"], payload=b"hola")).task

        async def copied() -> bool:
            return bool([t async for t in on_b.iter_tasks(label="a2a.federation.peer=a")])

        await eventually(copied, timeout=10, what="the copy on B")
        # Another broker's link on B (an agent of type "broker") never takes the copy onward.
        await on_b.register("broker.z", agent_type="broker", capabilities=["x"], max_concurrent_tasks=5)
        assert await on_b.claim("broker.z") == []
        (job,) = await on_b.claim("wb", wait=10)  # the copy on B, run by B's own agent
        assert bytes(job.task.spec.payload) == b"hola"
        assert job.task.spec.metadata["a2a.federation.via"] == ["b"]
        assert job.task.spec.metadata["a2a.federation.origin"]["task_id"] == task.task_id
        assert await status(on_a, task.task_id) == TaskStatus.RUNNING
        await on_b.complete(job.task.task_id, "wb", job.attempt, b"hello")

        async def completed_on_a() -> Any:
            t = await on_a.get_task(task.task_id)
            return t if t.status == TaskStatus.COMPLETED else None

        done = await eventually(completed_on_a, timeout=10, what="the task completed on A")
        assert done.result == b"hello" and done.assigned_agent_id == "broker.b"

        # Acknowledged once: a restart of B relays nothing again, and A keeps one completion.
        b.terminate()
        b.proc.stderr.close()
        b.start()
        await link_offers(on_a, "b", ["x"])
        history = await on_a.get_history(task.task_id)
        assert [h.to_status for h in history].count(TaskStatus.COMPLETED) == 1
        async with BrokerClient(b.address, timeout=10) as on_b2:
            copies = [t async for t in on_b2.iter_tasks(label="a2a.federation.peer=a")]
        assert len(copies) == 1


async def test_the_peers_capacity_is_respected(broker_process, tmp_path):
    a = start(broker_process, tmp_path, "a")
    b = start(broker_process, tmp_path, "b", peers=f"a={a.address}")
    async with BrokerClient(a.address, timeout=10) as on_a, BrokerClient(b.address, timeout=10) as on_b:
        await on_b.register("wb", capabilities=["x"], max_concurrent_tasks=1)
        await link_offers(on_a, "b", ["x"])
        ids = [(await on_a.submit(f"t{i}", required_capabilities=["x"])).task.task_id for i in range(3)]
        for _ in ids:
            (job,) = await on_b.claim("wb", wait=10)
            # B's one agent has one slot: A never leases B a second task meanwhile.
            assert (await on_a.get_agent("broker.b")).current_task_count <= 1
            copies = [t async for t in on_b.iter_tasks(label="a2a.federation.peer=a")]
            assert sum(1 for t in copies if not t.status.finished) == 1
            await on_b.complete(job.task.task_id, "wb", job.attempt, b"ok")

        async def all_done() -> bool:
            return all([await status(on_a, i) == TaskStatus.COMPLETED for i in ids])

        await eventually(all_done, timeout=15, what="every task completed on A")


async def test_a_peer_killed_mid_task_gives_the_task_back_after_its_lease(broker_process, tmp_path):
    a = start(broker_process, tmp_path, "a")
    b = start(broker_process, tmp_path, "b", peers=f"a={a.address}")
    async with BrokerClient(a.address, timeout=10) as on_a, BrokerClient(b.address, timeout=10) as on_b:
        await on_b.register("wb", capabilities=["x"], max_concurrent_tasks=1)
        await link_offers(on_a, "b", ["x"])
        task = (await on_a.submit("t", required_capabilities=["x"], lease_timeout=2.0)).task
        await on_b.claim("wb", wait=10)
        assert await status(on_a, task.task_id) == TaskStatus.RUNNING
        b.kill()  # B dies with the copy running: its lease on A is no longer extended
        await on_a.register("wa", capabilities=["x"], max_concurrent_tasks=1)
        (again,) = await on_a.claim("wa", wait=15)
        assert again.task.task_id == task.task_id and again.attempt == 2
        await on_a.complete(task.task_id, "wa", again.attempt, b"done on A")
        assert await status(on_a, task.task_id) == TaskStatus.COMPLETED


async def test_a_cycle_of_three_peers_runs_the_task_once_and_does_not_loop(broker_process, tmp_path):
    ports = {}
    from tests.conftest import free_port

    for n in "abc":
        ports[n] = f"127.0.0.1:{free_port()}"
    # a joins b, b joins c, c joins a: a ring.
    peers = {"a": f"b={ports['b']}", "b": f"c={ports['c']}", "c": f"a={ports['a']}"}
    brokers = {}
    for n in "abc":
        port = int(ports[n].rsplit(":", 1)[1])
        brokers[n] = broker_process(
            tmp_path / f"{n}.db", port=port, A2A_BROKER_BROKER_ID=n, A2A_BROKER_PEERS=peers[n], **FAST
        )
    for b in brokers.values():
        b.start()
    async with (
        BrokerClient(brokers["a"].address, timeout=10) as on_a,
        BrokerClient(brokers["c"].address, timeout=10) as on_c,
    ):
        await on_c.register("wc", capabilities=["x"])
        await link_offers(on_a, "c", ["x"])  # c's own agents, offered on a
        task = (await on_a.submit("ring", required_capabilities=["x"])).task
        (job,) = await on_c.claim("wc", wait=10)
        assert job.task.spec.metadata["a2a.federation.via"] == ["c"]
        await on_c.complete(job.task.task_id, "wc", job.attempt, b"ok")

        async def completed() -> bool:
            return await status(on_a, task.task_id) == TaskStatus.COMPLETED

        await eventually(completed, timeout=10, what="the ring's task completed on a")
        # The copy on c is for c's own agents only: c's peers' links never lease it onward.
        async with BrokerClient(brokers["b"].address, timeout=10) as on_b:
            assert [t async for t in on_b.iter_tasks()] == []
        # A task that claims to have crossed c already is refused by c's link (the second defence).
        looped = (
            await on_a.submit(
                "looped",
                required_capabilities=["x"],
                retry=RetryPolicy(max_retries=0),
                metadata={"a2a.federation.via": ["c"]},
            )
        ).task

        async def failed() -> Any:
            t = await on_a.get_task(looped.task_id)
            return t if t.status == TaskStatus.FAILED else None

        t = await eventually(failed, timeout=10, what="the looped task failed")
        assert "loop" in t.last_error


async def test_a_cancellation_on_the_origin_cancels_the_copy_and_tells_its_agent(broker_process, tmp_path):
    a = start(broker_process, tmp_path, "a")
    b = start(broker_process, tmp_path, "b", peers=f"a={a.address}")
    async with BrokerClient(a.address, timeout=10) as on_a, BrokerClient(b.address, timeout=10) as on_b:
        await on_b.register("wb", capabilities=["x"], max_concurrent_tasks=1)
        await link_offers(on_a, "b", ["x"])
        task = (await on_a.submit("long", required_capabilities=["x"])).task
        listen = on_b.listen("wb")
        copy_id = ""
        async for batch in listen:
            if batch.assignments:
                copy_id = batch.assignments[0].task.task_id
                break
        await on_a.cancel(task.task_id, reason="no longer needed")
        async for batch in listen:  # B's agent is told on its stream
            if batch.cancellations:
                assert [c.task_id for c in batch.cancellations] == [copy_id]
                assert "no longer needed" in batch.cancellations[0].reason
                break
        await listen.aclose()
        assert await status(on_b, copy_id) == TaskStatus.CANCELLED
        assert await status(on_a, task.task_id) == TaskStatus.CANCELLED


async def test_an_anycast_message_crosses_to_the_peer_for_its_own_subscribers_only(broker_process, tmp_path):
    a = start(broker_process, tmp_path, "a")
    b = start(broker_process, tmp_path, "b", peers=f"a={a.address}")
    async with BrokerClient(a.address, timeout=10) as on_a, BrokerClient(b.address, timeout=10) as on_b:
        await on_a.register("sender")
        await on_b.register("sb", capabilities=["x"])
        await on_b.register("broker.z", agent_type="broker", capabilities=["x"])  # another broker's link
        await link_offers(on_a, "b", ["x"])
        other_link = on_b.subscribe("broker.z")
        await other_link.wait_live()
        (mid,) = (await on_a.send("sender", Target.anycast("x"), b"ping", headers={"k": "v"})).message_ids

        async def copied() -> bool:
            return bool([x async for x in on_b.iter_messages(sender_id="peer.a")])

        # The copy exists on B while the other link's subscription is live: it is not for a link.
        await eventually(copied, timeout=10, what="the copy on B")
        got = on_b.subscribe("sb")
        m = await asyncio.wait_for(got.__anext__(), 10)
        assert (bytes(m.payload), m.headers["k"], m.headers["a2a.federation.sender"]) == (
            b"ping",
            "v",
            "sender",
        )
        assert m.headers["a2a.federation.via"] == "b" and m.headers["a2a.federation.origin"] == f"a/{mid}"
        await on_b.ack("sb", m.message_id)
        await got.aclose()
        # The copy went to B's own subscriber; the other broker's link, subscribed all along, got nothing.
        copy = await on_b.get_message(m.message_id)
        assert copy.recipient_id == "sb" and copy.status == MessageStatus.PROCESSED
        assert [x async for x in on_b.iter_messages(recipient_id="broker.z")] == []
        await other_link.aclose()

        async def acked_on_a() -> bool:
            return (await on_a.get_message(mid)).status == MessageStatus.PROCESSED

        await eventually(acked_on_a, timeout=10, what="the original acknowledged by B's link on A")


async def test_an_outcome_cut_by_a_crash_is_reported_after_the_restart(broker_process, tmp_path):
    a = start(broker_process, tmp_path, "a")
    b = start(broker_process, tmp_path, "b", peers=f"a={a.address}")
    async with BrokerClient(b.address, timeout=10) as on_b:
        await on_b.register("wb", capabilities=["x"], max_concurrent_tasks=1)
        async with BrokerClient(a.address, timeout=10) as on_a:
            await link_offers(on_a, "b", ["x"])
            task = (await on_a.submit("t", required_capabilities=["x"])).task
            (job,) = await on_b.claim("wb", wait=10)
        a.terminate()  # the origin is down: B's link cannot report
        a.proc.stderr.close()
        await on_b.complete(job.task.task_id, "wb", job.attempt, b"done on B")
        b.kill()  # and B dies with the report still owed
    b.proc.stderr.close()
    a.start()
    b.start()
    async with BrokerClient(a.address, timeout=10) as on_a:

        async def completed() -> Any:
            t = await on_a.get_task(task.task_id)
            return t if t.status == TaskStatus.COMPLETED else None

        done = await eventually(completed, timeout=15, what="the task completed on A after the restarts")
        assert done.result == b"done on B" and done.attempt == 1


async def test_a_peer_down_is_one_warning_then_info_lines_with_a_count(tmp_path, caplog):
    """#22.21: while a peer is down the link retries; that is one WARNING when it goes down, then
    INFO lines counting the retries (it was a WARNING per retry and an ERROR for the relay)."""
    import logging

    from broker.server import start_server
    from tests.conftest import make_settings

    caplog.set_level(logging.INFO, logger="broker.federation")
    a = await start_server(make_settings(tmp_path / "a", broker_id="a"))
    b = await start_server(
        make_settings(tmp_path / "b", broker_id="b", peers=f"a={a.address}", federation_refresh_s=0.2)
    )
    try:
        assert b.federation is not None

        def lines(level: int | None = None) -> list[logging.LogRecord]:
            return [
                r
                for r in caplog.records
                if r.name == "broker.federation" and (level is None or r.levelno == level)
            ]

        async def up() -> bool:
            return any(r.getMessage() == "peer link up" for r in lines())

        await eventually(up, timeout=10, what="the link up")
        await a.stop(0)

        async def retried() -> bool:  # the first failure and three retries, at whatever level
            return len([r for r in lines() if "down" in r.getMessage()]) >= 4

        await eventually(retried, timeout=15, what="three retries while the peer is down")
        loud = [r for r in lines() if r.levelno >= logging.WARNING]
        assert [r.getMessage() for r in loud] == ["peer link down; reconnecting"], [
            (r.levelname, r.getMessage()) for r in loud
        ]
        counts = [r.retries for r in lines(logging.INFO) if "still down" in r.getMessage()]  # type: ignore[attr-defined]
        assert counts[:3] == [1, 2, 3]
    finally:
        await b.stop(0.2)
