"""Tracing: a W3C trace started by a client on Send or Submit continues in the delivered message
and in the task assignment, with the broker's spans (send, deliver, ack, submit, assign, complete)
recorded by the OpenTelemetry SDK's in-memory exporter; and propagation alone with tracing off."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from a2a_broker_client import BrokerClient
from a2a_broker_client.models import OutgoingMessage, RetryPolicy
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from broker.server import Broker, start_server
from tests.conftest import eventually, make_settings

TP = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exp = InMemorySpanExporter()
    yield exp
    exp.shutdown()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    p = TracerProvider()
    p.add_span_processor(SimpleSpanProcessor(exporter))
    return p


@pytest.fixture
async def traced(
    tmp_path: Path, provider: TracerProvider, backend_overrides: dict[str, Any]
) -> AsyncIterator[Broker]:
    b = await start_server(
        make_settings(tmp_path, tracing="on", **backend_overrides), tracer_provider=provider
    )
    try:
        yield b
    finally:
        await b.stop(0.2)


def trace_id(traceparent: str) -> str:
    return traceparent.split("-")[1]


def named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == name]


def parent_of(span: ReadableSpan) -> int:
    assert span.parent is not None, f"{span.name} has no parent"
    return span.parent.span_id


async def test_a_trace_started_on_send_continues_in_the_delivered_message_and_its_ack(
    traced, provider, exporter
):
    tracer = provider.get_tracer("orchestrator")
    async with BrokerClient(traced.address, timeout=10) as client:
        await client.register("orch")
        await client.register("worker")
        with tracer.start_as_current_span("orchestrate") as root:
            sent = await client.send("orch", "worker", b"hello", conversation_id="conv-1")
        root_ctx = root.get_span_context()

        consumption = client.consume("worker")
        async with consumption:
            msg = await asyncio.wait_for(anext(aiter(consumption)), 10)
            assert msg.message_id == sent.message_ids[0]
            header = msg.headers["traceparent"]
            assert trace_id(header) == f"{root_ctx.trace_id:032x}"  # the same trace reaches the agent
            assert await consumption.ack(msg.message_id) == 1

    (send,) = named(exporter, "send")
    (deliver,) = named(exporter, "deliver")
    (acked,) = named(exporter, "ack")
    assert {s.context.trace_id for s in (send, deliver, acked)} == {root_ctx.trace_id}
    assert parent_of(send) == root_ctx.span_id
    assert parent_of(deliver) == send.context.span_id  # delivered alone: a child of the send
    assert parent_of(acked) == send.context.span_id
    # the receiver's header names the broker's send span, under which it continues the trace
    assert header.split("-")[2] == f"{send.context.span_id:016x}"
    assert send.kind is SpanKind.PRODUCER and deliver.kind is SpanKind.CONSUMER
    assert send.attributes is not None and deliver.attributes is not None
    assert send.attributes["messaging.system"] == "a2a-broker"
    assert send.attributes["messaging.operation.name"] == "send"
    assert send.attributes["messaging.message.id"] == msg.message_id
    assert deliver.attributes["messaging.destination.name"] == "worker"
    assert deliver.attributes["messaging.message.conversation_id"] == "conv-1"
    assert deliver.attributes["messaging.message.delivery_count"] == 1
    assert not deliver.links


async def test_a_redelivery_links_to_the_send_and_a_unary_ack_continues_the_callers_trace(traced, exporter):
    async with BrokerClient(traced.address, timeout=10) as client:
        await client.register("orch")
        await client.register("worker")
        await client.send("orch", "worker", b"again", traceparent=TP)
        consumption = client.consume("worker")
        async with consumption:
            stream = aiter(consumption)
            first = await asyncio.wait_for(anext(stream), 10)
            await consumption.nack(first.message_id)
            second = await asyncio.wait_for(anext(stream), 10)
            assert second.attempt == 2
            assert (
                await client.ack("worker", second.message_id, traceparent=second.headers["traceparent"]) == 1
            )

    (send,) = named(exporter, "send")
    assert f"{parent_of(send):016x}" == TP.split("-")[2]  # under the caller's context
    first_deliver, second_deliver = sorted(named(exporter, "deliver"), key=lambda s: s.start_time or 0)
    assert not first_deliver.links
    (link,) = second_deliver.links
    assert link.context.span_id == send.context.span_id
    assert second_deliver.attributes is not None
    assert second_deliver.attributes["messaging.message.delivery_count"] == 2
    (acked,) = named(exporter, "ack")
    assert parent_of(acked) == send.context.span_id  # the header the client sent back


async def test_a_backlog_delivered_in_one_push_gets_one_span_linked_to_every_send(traced, provider, exporter):
    tracer = provider.get_tracer("orchestrator")
    async with BrokerClient(traced.address, timeout=10) as client:
        await client.register("orch")
        await client.register("worker")
        for i in range(5):
            with tracer.start_as_current_span(f"job {i}"):
                await client.send("orch", "worker", b"%d" % i)
        consumption = client.consume("worker")
        async with consumption:
            stream = aiter(consumption)
            got = [await asyncio.wait_for(anext(stream), 10) for _ in range(5)]
            assert await consumption.ack([m.message_id for m in got]) == 5

    sends = {s.context.span_id for s in named(exporter, "send")}
    assert len(sends) == 5
    reached: list[int] = []  # every send, as the parent of a lone delivery or linked from a batch
    for d in named(exporter, "deliver"):
        if d.links:
            assert d.attributes is not None and d.attributes["messaging.batch.message_count"] == len(d.links)
            reached += [link.context.span_id for link in d.links]
        else:
            reached.append(parent_of(d))
    assert sorted(reached) == sorted(sends)
    (acked,) = named(exporter, "ack")  # one span for the request's five acks
    assert {link.context.span_id for link in acked.links} == sends


async def test_a_trace_started_on_submit_continues_in_the_assignment_and_completion(
    traced, provider, exporter
):
    tracer = provider.get_tracer("orchestrator")
    async with BrokerClient(traced.address, timeout=10) as client:
        await client.register("worker", capabilities=["summarize"], max_concurrent_tasks=2)
        with tracer.start_as_current_span("orchestrate") as root:
            submitted = await client.submit("summarize it", required_capabilities=["summarize"])
            retried = await client.submit(
                "flaky",
                required_capabilities=["summarize"],
                retry=RetryPolicy(max_retries=1, initial_backoff=0),
            )
        root_ctx = root.get_span_context()
        assert trace_id(submitted.task.traceparent) == f"{root_ctx.trace_id:032x}"

        work = client.work("worker")
        async with work:
            stream = aiter(work)
            got: dict[str, Any] = {}
            while len(got) < 2:
                event = await asyncio.wait_for(anext(stream), 10)
                for a in event.assignments:
                    got[a.task.task_id] = a
            a = got[submitted.task.task_id]
            assert trace_id(a.task.traceparent) == f"{root_ctx.trace_id:032x}"
            await work.complete(a.task.task_id, a.attempt, b"done")
            f = got[retried.task.task_id]
            await work.fail(f.task.task_id, f.attempt, "try again")
            again = None
            while again is None:
                event = await asyncio.wait_for(anext(stream), 10)
                again = next((x for x in event.assignments if x.task.task_id == retried.task.task_id), None)
            assert again.attempt == 2
            await work.complete(again.task.task_id, again.attempt, b"ok")

    await eventually(lambda: _true(len(named(exporter, "complete")) == 2), what="two complete spans")
    submits = named(exporter, "submit")
    assert len(submits) == 2 and all(parent_of(s) == root_ctx.span_id for s in submits)
    by_task = {s.attributes["a2a.task.id"]: s for s in submits if s.attributes}
    assigns = named(exporter, "assign")
    assert len(assigns) == 3  # the first task once, the flaky one twice
    first = next(s for s in assigns if s.attributes and s.attributes["a2a.task.id"] == submitted.task.task_id)
    assert parent_of(first) == by_task[submitted.task.task_id].context.span_id
    assert a.task.traceparent.split("-")[2] == f"{first.context.span_id:016x}"
    retry = next(s for s in assigns if s.attributes and s.attributes["a2a.task.attempt"] == 2)
    (link,) = retry.links  # the retry's attempt links to the submission it retries
    assert link.context.span_id == by_task[retried.task.task_id].context.span_id
    assert {s.context.trace_id for s in (*submits, *assigns, *named(exporter, "complete"))} == {
        root_ctx.trace_id
    }
    (failed,) = named(exporter, "fail")
    assert failed.attributes is not None and failed.attributes["a2a.task.attempt"] == 1


async def _true(value: bool) -> bool:
    return value


async def test_untraced_traffic_gets_spans_but_carries_no_context(traced, exporter):
    async with BrokerClient(traced.address, timeout=10) as client:
        await client.register("orch")
        await client.register("worker", capabilities=["x"])
        await client.send("orch", "worker", b"plain")
        task = (await client.submit("plain", required_capabilities=["x"])).task
        (m,) = (await client.list_messages(recipient_id="worker")).items
    assert "traceparent" not in m.headers and task.traceparent == ""
    (send,) = named(exporter, "send")
    (submit,) = named(exporter, "submit")
    assert send.parent is None and submit.parent is None  # recorded, as roots


async def test_with_tracing_off_the_callers_context_is_stored_and_handed_on_unchanged(broker):
    async with BrokerClient(broker.address, timeout=10) as client:
        await client.register("orch")
        await client.register("worker", capabilities=["x"])
        await client.send("orch", "worker", b"a", traceparent=TP)
        await client.send("orch", "worker", b"b", traceparent="01-not-a-trace-context")
        own = "00-11111111111111111111111111111111-2222222222222222-01"
        await client.send_batch(
            [
                OutgoingMessage(sender_id="orch", to="worker", payload=b"c"),
                OutgoingMessage(sender_id="orch", to="worker", payload=b"d", headers={"traceparent": own}),
            ],
            traceparent=TP,
        )
        page = await client.list_messages(recipient_id="worker")
        headers = {bytes(x.payload).decode(): x.headers.get("traceparent") for x in page.items}
        # stored as sent; an invalid context is dropped; a message's own header wins in a batch
        assert headers == {"a": TP, "b": None, "c": TP, "d": own}
        task = (await client.submit("t", required_capabilities=["x"], traceparent=TP)).task
        assert task.traceparent == TP
        (assignment,) = await client.claim("worker")
        assert assignment.task.traceparent == TP
        plain = (await client.submit("untraced", required_capabilities=["x"])).task
        assert plain.traceparent == ""
