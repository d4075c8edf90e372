"""Client error mapping and retry policy, against a tiny in-test gRPC server that answers
with chosen status codes (pure client logic: no broker involved)."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator, Callable
from typing import Any

import a2a_broker_client as abc
import grpc
import pytest
from a2a_broker_client import BrokerClient, RetryConfig, errors

FAST = RetryConfig(max_attempts=4, initial_backoff=0.001, multiplier=1.0, max_backoff=0.001, jitter=0.0)


class FakeBroker(grpc.GenericRpcHandler):
    """Answers every RPC of every service: ``plan[method]`` is a list of status codes to
    answer in turn (OK answers an empty response); calls are counted per method."""

    def __init__(self) -> None:
        self.plan: dict[str, list[grpc.StatusCode]] = {}
        self.default = grpc.StatusCode.OK
        self.calls: collections.Counter[str] = collections.Counter()

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        method = details.method.rsplit("/", 1)[-1]
        streaming = method in ("Subscribe", "Listen", "Watch", "WatchAgents")

        def next_code() -> grpc.StatusCode:
            self.calls[method] += 1
            queue = self.plan.get(method)
            return queue.pop(0) if queue else self.default

        async def unary(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            code = next_code()
            if code != grpc.StatusCode.OK:
                await context.abort(code, f"planned {code.name} for {method}")
            return b""

        async def stream(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
            code = next_code()
            if code != grpc.StatusCode.OK:
                await context.abort(code, f"planned {code.name} for {method}")
            yield b""

        if streaming:
            return grpc.unary_stream_rpc_method_handler(stream)
        return grpc.unary_unary_rpc_method_handler(unary)


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeBroker, str]]:
    handler = FakeBroker()
    server = grpc.aio.server()
    server.add_generic_rpc_handlers([handler])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield handler, f"127.0.0.1:{port}"
    finally:
        await server.stop(0)


@pytest.fixture
async def client(fake: tuple[FakeBroker, str]) -> AsyncIterator[BrokerClient]:
    async with BrokerClient(fake[1], retry=FAST, timeout=5) as c:
        yield c


MAPPED = [
    (grpc.StatusCode.INVALID_ARGUMENT, abc.InvalidArgumentError),
    (grpc.StatusCode.NOT_FOUND, abc.NotFoundError),
    (grpc.StatusCode.ALREADY_EXISTS, abc.AlreadyExistsError),
    (grpc.StatusCode.FAILED_PRECONDITION, abc.FailedPreconditionError),
    (grpc.StatusCode.RESOURCE_EXHAUSTED, abc.ResourceExhaustedError),
    (grpc.StatusCode.PERMISSION_DENIED, abc.PermissionDeniedError),
    (grpc.StatusCode.UNAUTHENTICATED, abc.UnauthenticatedError),
    (grpc.StatusCode.UNAVAILABLE, abc.UnavailableError),
    (grpc.StatusCode.DEADLINE_EXCEEDED, abc.DeadlineExceededError),
    (grpc.StatusCode.UNIMPLEMENTED, abc.UnimplementedError),
    (grpc.StatusCode.INTERNAL, abc.InternalError),
    (grpc.StatusCode.CANCELLED, abc.CancelledError),
    # Codes without a subclass still raise the one base type, carrying the code.
    (grpc.StatusCode.DATA_LOSS, abc.BrokerRpcError),
    (grpc.StatusCode.ABORTED, abc.BrokerRpcError),
    (grpc.StatusCode.UNKNOWN, abc.BrokerRpcError),
]


@pytest.mark.parametrize(("code", "cls"), MAPPED, ids=[c.name for c, _ in MAPPED])
async def test_status_code_maps_to_error_class(fake, client, code, cls):
    handler, _ = fake
    handler.default = code
    with pytest.raises(abc.BrokerRpcError) as info:
        await client.get_task("t1")
    err = info.value
    assert type(err) is cls
    assert err.code == code
    assert err.code_name == code.name
    assert err.details == f"planned {code.name} for Get"
    assert err.method == "tasks/Get"
    assert str(err) == f"{code.name}: planned {code.name} for Get"
    assert err.retryable is (code == grpc.StatusCode.UNAVAILABLE)


def test_every_mapped_class_is_exported_and_distinct():
    classes = list(errors.ERROR_CLASSES.values())
    assert len(set(classes)) == len(classes)
    for cls in classes:
        assert issubclass(cls, abc.BrokerRpcError)
        assert getattr(abc, cls.__name__) is cls


async def test_stream_errors_are_mapped(fake, client):
    handler, _ = fake
    handler.plan["Subscribe"] = [grpc.StatusCode.NOT_FOUND]
    stream = client.subscribe("nobody")
    with pytest.raises(abc.NotFoundError) as info:
        async for _ in stream:
            pass
    assert info.value.method == "messaging/Subscribe"
    handler.plan["Watch"] = [grpc.StatusCode.PERMISSION_DENIED]
    with pytest.raises(abc.PermissionDeniedError):
        async for _ in client.watch_tasks(task_id="t"):
            pass


async def test_unreachable_broker_is_unavailable():
    async with BrokerClient("127.0.0.1:1", retry=FAST, timeout=5) as c:
        with pytest.raises(abc.UnavailableError):
            await c.get_agent("a")


# ---------------------------------------------------------------- retries

U = grpc.StatusCode.UNAVAILABLE
MSG = abc.OutgoingMessage


def _calls() -> list[tuple[str, str, Callable[[BrokerClient], Any]]]:
    """(rpc, label, call) for every unary RPC, in both safe and unsafe forms where it matters."""
    spec_key = abc.TaskSpec("t", idempotency_key="k")
    node = abc.GraphNode("a", abc.TaskSpec("a", idempotency_key="ka"))
    node_nokey = abc.GraphNode("b", abc.TaskSpec("b"))
    return [
        # Reads and idempotent calls: retried.
        ("GetAgent", "safe", lambda c: c.get_agent("a")),
        ("ListAgents", "safe", lambda c: c.list_agents()),
        ("Heartbeat", "safe", lambda c: c.heartbeat("a")),
        ("Register", "safe", lambda c: c.register("a")),
        ("GetMessage", "safe", lambda c: c.get_message("m")),
        ("ListMessages", "safe", lambda c: c.list_messages()),
        ("Ack", "safe", lambda c: c.ack("a", ["m"])),
        ("Get", "safe", lambda c: c.get_task("t")),
        ("List", "safe", lambda c: c.list_tasks()),
        ("GetTree", "safe", lambda c: c.get_tree("t")),
        ("GetHistory", "safe", lambda c: c.get_history("t")),
        ("ExtendLease", "safe", lambda c: c.extend_lease("t", "a", 1)),
        ("Send", "safe", lambda c: c.send("a", "b", b"x", idempotency_key="k")),
        (
            "SendBatch",
            "safe",
            lambda c: c.send_batch(
                [MSG("a", "b", idempotency_key="k1"), MSG("a", "c", idempotency_key="k2")]
            ),
        ),
        ("Submit", "safe", lambda c: c.submit(spec_key)),
        ("SubmitGraph", "safe", lambda c: c.submit_graph([node])),
        # Not idempotent: tried once.
        ("Register", "unsafe", lambda c: c.register("")),
        ("Deregister", "unsafe", lambda c: c.deregister("a")),
        ("Send", "unsafe", lambda c: c.send("a", "b", b"x")),
        ("SendBatch", "unsafe", lambda c: c.send_batch([MSG("a", "b", idempotency_key="k1"), MSG("a", "c")])),
        ("Nack", "unsafe", lambda c: c.nack("a", ["m"])),
        ("Requeue", "unsafe", lambda c: c.requeue(["m"])),
        ("Submit", "unsafe", lambda c: c.submit("t")),
        ("SubmitGraph", "unsafe", lambda c: c.submit_graph([node, node_nokey])),
        ("Claim", "unsafe", lambda c: c.claim("a", max_tasks=2)),
        ("Complete", "unsafe", lambda c: c.complete("t", "a", 1, b"r")),
        ("Fail", "unsafe", lambda c: c.fail("t", "a", 1, "boom")),
        ("Cancel", "unsafe", lambda c: c.cancel("t")),
    ]


CALLS = _calls()


@pytest.mark.parametrize(("rpc", "kind", "call"), CALLS, ids=[f"{r}-{k}" for r, k, _ in CALLS])
async def test_retry_only_safe_calls_on_unavailable(fake, client, rpc, kind, call):
    handler, _ = fake
    handler.plan[rpc] = [U, U]
    if kind == "safe":
        await call(client)  # third attempt answers OK
        assert handler.calls[rpc] == 3
    else:
        with pytest.raises(abc.UnavailableError):
            await call(client)
        assert handler.calls[rpc] == 1, f"{rpc} without an idempotency guarantee must not be retried"


async def test_retries_stop_after_max_attempts(fake, client):
    handler, _ = fake
    handler.default = U
    with pytest.raises(abc.UnavailableError):
        await client.get_task("t")
    assert handler.calls["Get"] == FAST.max_attempts


@pytest.mark.parametrize(
    "code",
    [
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    ],
)
async def test_other_codes_are_not_retried_even_for_reads(fake, client, code):
    handler, _ = fake
    handler.plan["Get"] = [code, grpc.StatusCode.OK]
    with pytest.raises(abc.BrokerRpcError) as info:
        await client.get_task("t")
    assert info.value.code == code
    assert handler.calls["Get"] == 1


async def test_retry_disabled(fake):
    handler, address = fake
    handler.plan["Get"] = [U]
    async with BrokerClient(address, retry=RetryConfig(max_attempts=1)) as c:
        with pytest.raises(abc.UnavailableError):
            await c.get_task("t")
    assert handler.calls["Get"] == 1


async def test_sync_client_maps_errors_too(fake):
    handler, address = fake
    handler.plan["GetAgent"] = [grpc.StatusCode.NOT_FOUND]
    handler.plan["Send"] = [U]

    def script() -> None:  # runs in a thread: the sync client has its own event loop
        with abc.SyncBrokerClient(address, retry=FAST) as c:
            with pytest.raises(abc.NotFoundError):
                c.get_agent("nobody")
            with pytest.raises(abc.UnavailableError):
                c.send("a", "b", "hello")
            assert c.get_agent("a").agent_id == ""  # the fake answers an empty Agent

    await asyncio.to_thread(script)
    assert handler.calls["Send"] == 1


def test_backoff_grows_and_is_capped():
    cfg = RetryConfig(max_attempts=6, initial_backoff=0.1, multiplier=2.0, max_backoff=0.5, jitter=0.0)
    assert list(cfg.delays()) == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.5])
    jittered = list(
        RetryConfig(max_attempts=50, initial_backoff=1, multiplier=1, max_backoff=1, jitter=0.2).delays()
    )
    assert all(1.0 <= d <= 1.2 for d in jittered) and len(set(jittered)) > 1
    with pytest.raises(ValueError):
        RetryConfig(max_attempts=0)
