"""The A2A gateway, driven by a2a-sdk's own client (resolving the agent card over HTTP, then gRPC)
against a real broker and a worker agent on our API."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import jsonschema
import pytest
from a2a.client import A2ACardResolver, ClientConfig, ClientFactory
from a2a.types import a2a_pb2 as a2a
from a2a.types import a2a_pb2_grpc
from a2a_broker_client import BrokerClient
from a2a_broker_client.security import bearer_interceptors
from google.protobuf import json_format
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from broker.server import start_server
from tests.conftest import make_settings

from .security_support import issue

RESULT = "application/vnd.a2a-broker.result+json"
S = a2a.TaskState


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"http_address": "127.0.0.1:0"}


async def sdk_client(broker: Any, *, streaming: bool = True, token: str | None = None) -> Any:
    """An a2a-sdk client made from the card the broker serves at /.well-known/agent-card.json."""
    async with httpx.AsyncClient() as http:
        card = await A2ACardResolver(http, f"http://{broker.http_address}").get_agent_card()

    def channel(url: str) -> grpc.aio.Channel:
        target = url.split("://", 1)[-1]
        return grpc.aio.insecure_channel(target, interceptors=bearer_interceptors(token) if token else None)

    config = ClientConfig(
        streaming=streaming, grpc_channel_factory=channel, supported_protocol_bindings=["GRPC"]
    )
    return ClientFactory(config).create(card)


def message(
    text: str, mid: str, *, skill: str | None = "echo", task_id: str = "", context_id: str = ""
) -> a2a.SendMessageRequest:
    m = a2a.Message(message_id=mid, role=a2a.ROLE_USER, task_id=task_id, context_id=context_id)
    m.parts.add(text=text)
    if skill:
        m.metadata.update({"skill": skill})
    return a2a.SendMessageRequest(message=m)


def result(state: str = "completed", *, text: str = "", artifact: str = "") -> tuple[bytes, str]:
    doc: dict[str, Any] = {"state": state}
    if text:
        doc["message"] = {"messageId": "r", "role": "ROLE_AGENT", "parts": [{"text": text}]}
    if artifact:
        doc["artifacts"] = [{"artifactId": "answer", "name": "answer", "parts": [{"text": artifact}]}]
    return json.dumps(doc).encode(), RESULT


class Worker:
    """An agent on our own API with the skill "echo": claims each turn when told to."""

    def __init__(self, client: BrokerClient) -> None:
        self.client = client
        self.turns: list[dict[str, Any]] = []

    async def take(self) -> Any:
        (a,) = await self.client.claim("echo-agent", wait=10)
        self.turns.append(json.loads(a.task.spec.payload))
        return a

    async def finish(self, a: Any, state: str = "completed", **kw: Any) -> None:
        payload, ctype = result(state, **kw)
        await self.client.complete(
            a.task.task_id, "echo-agent", a.attempt, payload, result_content_type=ctype
        )


@pytest.fixture
async def worker(broker) -> AsyncIterator[Worker]:
    async with BrokerClient(broker.address, timeout=15) as c:
        await c.register("echo-agent", capabilities=["echo"], max_concurrent_tasks=2)
        yield Worker(c)


async def events(stream: AsyncIterator[Any], n: int) -> list[Any]:
    out = []
    async for ev in stream:
        out.append(ev)
        if len(out) == n:
            break
    return out


async def test_send_a_message_and_get_the_completed_task_with_its_artifact(broker, worker):
    client = await sdk_client(broker, streaming=False)
    sent = asyncio.ensure_future(events(client.send_message(message("hello", "m-1")), 1))
    a = await worker.take()
    assert worker.turns[0]["message"]["parts"][0]["text"] == "hello"
    await worker.finish(a, artifact="HELLO")
    (resp,) = await asyncio.wait_for(sent, 10)
    task = resp.task
    assert task.status.state == S.Value("TASK_STATE_COMPLETED")
    assert [p.text for art in task.artifacts for p in art.parts] == ["HELLO"]
    assert task.id == a.task.task_id and task.context_id
    assert [m.parts[0].text for m in task.history] == ["hello"]
    # The same message id again is the same task (the message id is the idempotency key).
    (again,) = await events(client.send_message(message("hello", "m-1")), 1)
    assert again.task.id == task.id
    got = await client.get_task(a2a.GetTaskRequest(id=task.id))
    assert got.status.state == S.Value("TASK_STATE_COMPLETED")


async def test_a_task_streams_its_events_in_order_and_a_resubscriber_gets_the_current_state_first(
    broker, worker
):
    client = await sdk_client(broker)
    stream = client.send_message(message("stream me", "m-2"))
    (first,) = await events(stream, 1)
    assert first.task.status.state == S.Value("TASK_STATE_SUBMITTED")
    a = await worker.take()
    (working,) = await events(stream, 1)
    assert working.status_update.status.state == S.Value("TASK_STATE_WORKING")
    await stream.aclose()  # the caller drops
    resub = client.subscribe(a2a.SubscribeToTaskRequest(id=first.task.id))
    (current,) = await events(resub, 1)
    assert current.task.status.state == S.Value("TASK_STATE_WORKING")  # the current state first
    await worker.finish(a, artifact="done")
    rest = await asyncio.wait_for(events(resub, 2), 10)
    assert rest[0].artifact_update.artifact.parts[0].text == "done"
    assert rest[1].status_update.status.state == S.Value("TASK_STATE_COMPLETED")


async def test_cancel_a_running_task_and_the_worker_is_told(broker, worker):
    client = await sdk_client(broker, streaming=False)
    (resp,) = await events(client.send_message(_immediately(message("long job", "m-3"))), 1)
    listen = worker.client.listen("echo-agent")
    assignment = None
    async for batch in listen:
        if batch.assignments:
            (assignment,) = batch.assignments
            break
    assert assignment is not None and assignment.task.task_id == resp.task.id
    cancelled = await client.cancel_task(a2a.CancelTaskRequest(id=resp.task.id))
    assert cancelled.status.state == S.Value("TASK_STATE_CANCELED")
    async for batch in listen:
        if batch.cancellations:
            assert [c.task_id for c in batch.cancellations] == [resp.task.id]
            break
    await listen.aclose()
    with pytest.raises(Exception, match="nothing to cancel"):
        await client.cancel_task(a2a.CancelTaskRequest(id=resp.task.id))


def _immediately(req: a2a.SendMessageRequest) -> a2a.SendMessageRequest:
    req.configuration.return_immediately = True
    return req


async def test_input_required_round_trip(broker, worker):
    client = await sdk_client(broker, streaming=False)
    asked = asyncio.ensure_future(events(client.send_message(message("book a table", "m-4")), 1))
    a = await worker.take()
    await worker.finish(a, "input-required", text="for how many people?")
    (resp,) = await asyncio.wait_for(asked, 10)
    task = resp.task
    assert task.status.state == S.Value("TASK_STATE_INPUT_REQUIRED")
    assert task.status.message.parts[0].text == "for how many people?"
    # The question frees the worker: waiting for the caller holds none of its capacity.
    assert (await worker.client.get_agent("echo-agent")).current_task_count == 0
    answered = asyncio.ensure_future(
        events(
            client.send_message(
                message("four", "m-5", skill=None, task_id=task.id, context_id=task.context_id)
            ),
            1,
        )
    )
    b = await worker.take()
    assert b.task.spec.parent_id == task.id
    history = worker.turns[1]["history"]
    assert [m["parts"][0]["text"] for m in history] == ["book a table", "for how many people?"]
    assert worker.turns[1]["message"]["parts"][0]["text"] == "four"
    await worker.finish(b, artifact="booked for 4")
    (done,) = await asyncio.wait_for(answered, 10)
    assert done.task.id == task.id
    assert done.task.status.state == S.Value("TASK_STATE_COMPLETED")
    assert [m.parts[0].text for m in done.task.history] == ["book a table", "for how many people?", "four"]
    assert [p.text for art in done.task.artifacts for p in art.parts] == ["booked for 4"]


async def test_an_unknown_task_is_not_found_with_the_a2a_error_info(broker):
    stub = a2a_pb2_grpc.A2AServiceStub(grpc.aio.insecure_channel(broker.address))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetTask(a2a.GetTaskRequest(id="t-nope"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    status = rpc_status.from_call(err.value)
    info = error_details_pb2.ErrorInfo()
    assert status is not None and status.details[0].Unpack(info)
    assert (info.domain, info.reason) == ("a2a-protocol.org", "TASK_NOT_FOUND")
    # A skill nobody offers is refused, naming it.
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.SendMessage(message("x", "m-6", skill="juggling"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "juggling" in (err.value.details() or "")


async def test_the_agent_card_validates_and_follows_registrations(broker):
    from a2a.client.card_resolver import parse_agent_card
    from a2a.utils.proto_utils import validate_proto_required_fields

    async def card() -> dict[str, Any]:
        async with httpx.AsyncClient() as http:
            resp = await http.get(f"http://{broker.http_address}/.well-known/agent-card.json")
            assert resp.status_code == 200
            return resp.json()

    # The JSON Schema a2a-sdk derives from the specification's proto (what its HTTP servers
    # document), loaded on its own: its package's __init__ needs the SDK's HTTP server extras.
    import importlib.util
    from pathlib import Path

    from a2a import server as sdk_server

    path = Path(sdk_server.__file__).parent / "routes" / "_proto_schema.py"
    spec = importlib.util.spec_from_file_location("a2a_proto_schema", path)
    assert spec is not None and spec.loader is not None
    proto_schema = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(proto_schema)
    components: dict[str, Any] = {}
    ref = proto_schema.message_schema(a2a.AgentCard.DESCRIPTOR, components)
    schema = {**ref, "components": {"schemas": components}}
    validator = jsonschema.Draft202012Validator(schema)

    def v1(card: dict[str, Any]) -> dict[str, Any]:
        """The card without the fields a2a-sdk adds for A2A v0.3 clients (url, preferredTransport...)."""
        return {k: v for k, v in card.items() if k in a2a.AgentCard.DESCRIPTOR.fields_by_camelcase_name}

    before = await card()
    validator.validate(before)
    strict = json_format.ParseDict(v1(before), a2a.AgentCard())  # unknown fields refused
    validate_proto_required_fields(strict)  # the specification's REQUIRED fields
    assert (before["url"], before["preferredTransport"]) == (f"http://{broker.http_address}/", "JSONRPC")
    parse_agent_card(dict(before))  # as a2a-sdk's clients read it
    assert [s["id"] for s in before["skills"]] == ["a2a-broker.directory"]
    base = f"http://{broker.http_address}"
    listed = [(i["protocolBinding"], i["url"], i["protocolVersion"]) for i in before["supportedInterfaces"]]
    assert listed == [
        ("JSONRPC", base + "/", "1.0"),
        ("HTTP+JSON", base, "1.0"),
        ("GRPC", broker.address, "1.0"),
        ("JSONRPC", base + "/", "0.3"),
        ("HTTP+JSON", base, "0.3"),
        ("GRPC", broker.address, "0.3"),
    ]
    async with BrokerClient(broker.address, timeout=10) as c:
        await c.register("translator", capabilities=["translate", "summarize"])
        await c.register("generalist", capabilities=["*"])  # takes tasks naming no capability: no skill
        after = await card()
        assert [s["id"] for s in after["skills"]] == ["a2a-broker.directory", "summarize", "translate"]
        validator.validate(after)
        validate_proto_required_fields(json_format.ParseDict(v1(after), a2a.AgentCard()))
        # The broker's own skill answers at once with who offers what.
        client = await sdk_client(broker, streaming=False)
        (resp,) = await events(client.send_message(message("who?", "d-1", skill="a2a-broker.directory")), 1)
        assert resp.message.parts[0].text == "summarize: translator\ntranslate: translator"
        await c.deregister("translator")
    assert [s["id"] for s in (await card())["skills"]] == ["a2a-broker.directory"]


@pytest.fixture
async def token_broker(tmp_path) -> AsyncIterator[Any]:
    b = await start_server(make_settings(tmp_path, auth="token", http_address="127.0.0.1:0"))
    try:
        yield b
    finally:
        await b.stop(0.2)


async def test_with_auth_a_caller_needs_credentials_and_lists_only_its_own_tasks(token_broker):
    db = token_broker.settings.db
    alice, bob = issue(db, "alice", "orchestrator"), issue(db, "bob", "orchestrator")
    agent = issue(db, "echo-agent", "agent")
    async with BrokerClient(token_broker.address, timeout=10, token=agent) as c:
        await c.register("echo-agent", capabilities=["echo"])
    bare = a2a_pb2_grpc.A2AServiceStub(grpc.aio.insecure_channel(token_broker.address))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await bare.ListTasks(a2a.ListTasksRequest())
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED

    as_alice = await sdk_client(token_broker, streaming=False, token=alice)
    as_bob = await sdk_client(token_broker, streaming=False, token=bob)
    ids = []
    for i in range(5):
        (r,) = await events(as_alice.send_message(_immediately(message(f"job {i}", f"a-{i}"))), 1)
        ids.append(r.task.id)
    (theirs,) = await events(as_bob.send_message(_immediately(message("bob's", "b-0"))), 1)

    seen, token = [], ""
    while True:
        page = await as_alice.list_tasks(a2a.ListTasksRequest(page_size=2, page_token=token))
        assert len(page.tasks) <= 2
        seen += [t.id for t in page.tasks]
        token = page.next_page_token
        if not token:
            break
    assert seen == ids[::-1]  # newest status first
    assert [t.id for t in (await as_bob.list_tasks(a2a.ListTasksRequest())).tasks] == [theirs.task.id]
    with pytest.raises(Exception, match="not found"):
        await as_bob.get_task(a2a.GetTaskRequest(id=ids[0]))


async def test_exposure_decides_who_takes_a2a_work_and_the_card_shows_descriptions(broker):
    from a2a_broker_client import Exposure

    async with BrokerClient(broker.address, timeout=10) as c:
        await c.register(
            "private", capabilities=["secret", "translate"], exposure=Exposure.BROKER, max_concurrent_tasks=3
        )
        reg = await c.register(
            "a2a-only",
            capabilities=["translate"],
            exposure=Exposure.A2A,
            capability_descriptions={"translate": "Translates text between languages"},
        )
        assert reg.agent.exposure == Exposure.A2A
        assert reg.agent.capability_descriptions == {"translate": "Translates text between languages"}
        card = await (await sdk_client(broker, streaming=False)).get_extended_agent_card(
            a2a.GetExtendedAgentCardRequest()
        )
        skills = {s.id: s.description for s in card.skills}
        assert set(skills) == {"a2a-broker.directory", "translate"}  # not "secret": broker-only
        assert skills["translate"].startswith("Translates text between languages")

        client = await sdk_client(broker, streaming=False)
        with pytest.raises(Exception, match="secret"):
            await events(client.send_message(message("psst", "x-1", skill="secret")), 1)
        # A task on our API for "translate" goes to the broker-only agent, never the A2A-only one.
        plain = (await c.submit("plain translation", required_capabilities=["translate"])).task
        assert await c.claim("a2a-only") == []
        (mine,) = await c.claim("private")
        assert mine.task.task_id == plain.task_id
        # An A2A task for "translate" goes to the A2A-only agent, never the broker-only one.
        (r,) = await events(
            client.send_message(_immediately(message("bonjour", "x-2", skill="translate"))), 1
        )
        assert await c.claim("private") == []
        (theirs,) = await c.claim("a2a-only")
        assert theirs.task.task_id == r.task.id
        with pytest.raises(Exception, match="capability_descriptions"):
            await c.register("bad", capabilities=["x"], capability_descriptions={"y": "not mine"})


async def test_a_message_naming_an_agent_goes_to_that_agent_only(broker):
    async with BrokerClient(broker.address, timeout=10) as c:
        for agent in ("first", "second"):
            await c.register(agent, capabilities=["echo"], max_concurrent_tasks=2)
        client = await sdk_client(broker, streaming=False)
        req = _immediately(message("for you", "n-1", skill=None))
        req.message.metadata.update({"agent": "second"})
        (r,) = await events(client.send_message(req), 1)
        assert await c.claim("first") == []  # able, free, but not the one named
        (job,) = await c.claim("second")
        assert job.task.task_id == r.task.id
        # An agent cannot pose as another by registering its mark.
        await c.register("third", capabilities=["@second"], max_concurrent_tasks=2)
        req = _immediately(message("again", "n-2", skill=None))
        req.message.metadata.update({"agent": "second"})
        await events(client.send_message(req), 1)
        assert await c.claim("third") == []
        for bad, why in (("nobody", "no agent"), ("first", "does not offer")):
            req = message("x", f"n-{bad}", skill="translate")
            req.message.metadata.update({"agent": bad})
            with pytest.raises(Exception, match=why):
                await events(client.send_message(req), 1)


async def test_a_skill_agent_over_grpc_is_reached_by_its_tenant_and_the_default_skill_takes_the_rest(
    tmp_path,
):
    b = await start_server(make_settings(tmp_path, http_address="127.0.0.1:0", a2a_default_skill="echo"))
    try:
        async with BrokerClient(b.address, timeout=15) as c:
            await c.register("echo-agent", capabilities=["echo"], max_concurrent_tasks=4)
            await c.register("other", capabilities=["translate"])
            w = Worker(c)
            # the broker's own agent, no metadata: the default skill
            client = await sdk_client(b, streaming=False)
            sent = asyncio.ensure_future(events(client.send_message(message("plain", "g-1", skill=None)), 1))
            a = await w.take()
            assert "echo" in a.task.spec.required_capabilities
            await w.finish(a, artifact="ok")
            await asyncio.wait_for(sent, 10)
            # the skill's own agent over gRPC: its card's interface carries the skill as its tenant
            async with httpx.AsyncClient() as http:
                card = await A2ACardResolver(http, f"{b.http_url}/a2a/translate").get_agent_card()
            (iface,) = [
                i
                for i in card.supported_interfaces
                if i.protocol_binding == "GRPC" and i.protocol_version == "1.0"
            ]
            assert iface.tenant == "translate" and iface.url == b.address
            config = ClientConfig(
                streaming=False,
                grpc_channel_factory=grpc.aio.insecure_channel,
                supported_protocol_bindings=["GRPC"],
            )
            translator = ClientFactory(config).create(card)
            immediately = message("bonjour", "g-2", skill=None)
            immediately.configuration.return_immediately = True
            (resp,) = await events(translator.send_message(immediately), 1)
            got = await c.get_task(resp.task.id)
            assert "translate" in got.spec.required_capabilities
    finally:
        await b.stop(0.2)
