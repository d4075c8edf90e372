"""The marks: capabilities the broker lends agents (A2A gateway, local copies, named agents)."""

from __future__ import annotations

from broker.domain import federation, marks
from broker.models.agents import Agent, AgentStatus, Exposure


def test_an_agent_leases_with_its_own_capabilities_and_the_marks_it_holds():
    assert marks.lease_capabilities(("x",), Exposure.BOTH, "worker", "w1") == (
        "@w1",
        "a2a.gateway",
        "a2a.local",
        "x",
    )
    assert marks.lease_capabilities(("x",), Exposure.BROKER, "worker", "w1") == ("@w1", "a2a.local", "x")
    # another broker's link holds no a2a.local: a copy taken from a peer is never relayed again
    assert "a2a.local" not in marks.lease_capabilities(("x",), Exposure.BOTH, "broker", "broker.b")
    # registering a mark as one's own capability gives nothing
    assert marks.lease_capabilities(("@w2", "a2a.local", "x"), Exposure.BROKER, "broker", "z") == ("@z", "x")


def test_an_agent_with_no_capability_of_its_own_takes_the_tasks_requiring_none():
    assert "*" in marks.lease_capabilities((), Exposure.BROKER, "worker", "w1")
    assert "*" in marks.lease_capabilities(("@w2",), Exposure.BROKER, "worker", "w1")  # a mark is not its own
    assert "*" not in marks.lease_capabilities(("x",), Exposure.BROKER, "worker", "w1")
    assert "*" in marks.lease_capabilities(("*", "x"), Exposure.BROKER, "worker", "w1")  # it says so
    # another broker's link takes them only when it offers "*" (one of its agents takes them)
    assert "*" not in marks.lease_capabilities((), Exposure.BOTH, "broker", "broker.b")


def test_an_a2a_only_agent_leases_only_the_gateways_tasks():
    assert marks.may_lease(Exposure.A2A, ("a2a.gateway", "x"))
    assert not marks.may_lease(Exposure.A2A, ("x",))
    assert marks.may_lease(Exposure.BOTH, ("x",)) and marks.may_lease(Exposure.BROKER, ("x",))


def test_subscriptions_take_local_copies_except_a_brokers_link():
    assert marks.subscription_capabilities(("x",), "worker") == ("x", "a2a.local:x")
    assert marks.subscription_capabilities(("x",), "broker") == ("x",)
    assert marks.unpooled("a2a.local:x") == "x"
    assert [c for c in ("a2a.gateway", "a2a.local:x", "@a", "x") if not marks.is_mark(c)] == ["x"]


def _agent(agent_id: str, caps: tuple[str, ...], **kw) -> Agent:
    base = dict(
        agent_id=agent_id, name=agent_id, agent_type="worker", capabilities=caps, max_concurrent_tasks=2,
        current_task_count=0, endpoint="", labels={}, metadata={}, status=AgentStatus.AVAILABLE,
        registered_at=0, updated_at=0, last_heartbeat_at=0,
    )  # fmt: skip
    return Agent(**{**base, **kw})


def test_a_broker_offers_its_own_agents_only():
    agents = [
        _agent("w1", ("x",), current_task_count=1),
        _agent("w2", ("y",)),
        _agent("link", ("z",), agent_type="broker"),
        _agent("gone", ("q",), status=AgentStatus.OFFLINE),
        _agent("a2a", ("r",), exposure=Exposure.A2A),
    ]
    assert federation.offer(agents) == (["x", "y"], 4, 3)
    assert federation.crossed(["a", "b"], "b") and not federation.crossed(["a"], "b")
