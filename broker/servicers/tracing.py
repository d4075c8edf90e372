"""OpenTelemetry tracing: W3C trace context carried from orchestrator to agent and back.

Propagation is always on and costs one look at the call's metadata: a ``traceparent`` sent with
``Send``, ``SendBatch``, ``Publish``, ``Submit`` or ``SubmitGraph`` is stored with the message (as
its ``traceparent`` header) or the task (``Task.traceparent``) and handed to the receiver with the
delivery or the assignment, so a receiver that continues the trace joins the sender's.

Spans are made with ``--tracing on`` (the ``[tracing]`` extra: opentelemetry-api), through the
process's tracer provider: the application's when it set one, else, when opentelemetry-sdk is
installed, one the broker configures from ``OTEL_TRACES_EXPORTER`` (``console``, ``otlp`` with
the OTLP exporter installed, or ``none``) and the other standard ``OTEL_*`` variables. Each span
is named by its operation and carries the messaging semantic conventions' attributes:

========== ======== ========================================================================
span       kind     parent, and links
========== ======== ========================================================================
send       producer the call's traceparent (or the message's own header); the stored context
deliver    consumer one per push: the message's stored context when the push carries one
                    (a redelivery links to it too), else links to each message's (batch)
ack        consumer the Ack call's traceparent; on a Consume stream, one per request, as deliver
submit     producer the call's traceparent; the stored context of every task submitted
assign     consumer the task's stored context; a retry's attempt links to it as well; the
                    assignment hands the worker this span's context
complete   server   the call's traceparent, else the task's stored context (also ``fail``)
========== ======== ========================================================================

Deliveries and acks are spanned per push and per request, not per message, as the messaging
conventions do for batches: a span costs about 15 us here, and a drain moves a message in 40.

With ``--tracing off`` (the default) no OpenTelemetry module is imported.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import grpc

from ..errors import BrokerError

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

TRACEPARENT = "traceparent"
_FORMAT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})\Z")
SYSTEM = "a2a-broker"


def valid(traceparent: str | None) -> str | None:
    """``traceparent`` when it is a W3C version-00 trace context with non-zero ids, else None."""
    if not traceparent:
        return None
    m = _FORMAT.match(traceparent)
    if m is None or m.group(1) == "0" * 32 or m.group(2) == "0" * 16:
        return None
    return traceparent


def incoming(context: grpc.aio.ServicerContext) -> str | None:
    """The call's ``traceparent`` metadata, if it is a valid trace context."""
    for key, value in context.invocation_metadata() or ():
        if key == TRACEPARENT:
            return valid(value) if isinstance(value, str) else None
    return None


class SpanScope:
    """A span in a ``with`` block: ended on exit (marked as an error when the block raised).
    ``traceparent`` is the context to store for what the block creates: the span's own when
    tracing is on, the parent's otherwise."""

    __slots__ = ("span", "traceparent")

    def __init__(self, span: Span | None, traceparent: str | None) -> None:
        self.span = span
        self.traceparent = traceparent

    def __enter__(self) -> SpanScope:
        return self

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        span = self.span
        if span is None:
            return
        if exc is not None:
            from opentelemetry.trace import Status, StatusCode

            span.set_status(Status(StatusCode.ERROR, getattr(exc, "message", None) or type(exc).__name__))
        span.end()

    def set(self, key: str, value: Any) -> None:
        if self.span is not None and value is not None:
            self.span.set_attribute(key, value)


class Tracing:
    """The broker's tracer, or nothing (``on`` False) with ``--tracing off``."""

    def __init__(self, enabled: bool, provider: Any = None) -> None:
        self.on = enabled
        self._tracer: Tracer | None = None
        if not enabled:
            return
        try:
            from opentelemetry import trace
        except ImportError:
            raise BrokerError("--tracing on needs OpenTelemetry: pip install 'a2a-broker[tracing]'") from None
        if provider is None:
            provider = default_provider()
        from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, TraceFlags

        from .. import __version__

        self._tracer = trace.get_tracer("a2a-broker", __version__, tracer_provider=provider)
        self._kinds = {
            "producer": SpanKind.PRODUCER,
            "consumer": SpanKind.CONSUMER,
            "server": SpanKind.SERVER,
        }
        self._link, self._remote, self._span_context = Link, NonRecordingSpan, SpanContext
        self._flags = TraceFlags
        self._in_context = trace.set_span_in_context
        self._base = {
            op: {"messaging.system": SYSTEM, "messaging.operation.name": op, "messaging.operation.type": kind}
            for op, kind in _OPERATION_TYPE.items()
        }

    # -- making spans -----------------------------------------------------------------------

    def scope(
        self,
        operation: str,
        parent: str | None,
        kind: str,
        attributes: Mapping[str, Any] | None = None,
        start_ns: int | None = None,
    ) -> SpanScope:
        """A span for an operation of the broker's (use in a ``with`` block). Its context is
        handed on (``traceparent``) only inside a trace the caller started: traffic nobody traces
        carries no context, and costs no header."""
        if self._tracer is None:
            return SpanScope(None, parent)
        span = self._start(operation, parent, kind, attributes, (), start_ns)
        return SpanScope(span, traceparent_of(span) if parent else None)

    def event(
        self, operation: str, parent: str | None, attributes: Mapping[str, Any], retry: bool = False
    ) -> str | None:
        """A span for a moment (an assignment), ended at once; its traceparent. ``retry``: a
        retry's attempt, which also links to the stored context."""
        if self._tracer is None:
            return parent
        links = (self._link_to(parent, "retry"),) if retry and parent else ()
        span = self._start(operation, parent, "consumer", attributes, links, None)
        span.end()
        return traceparent_of(span)

    def batch(
        self, operation: str, parents: list[str | None], attributes: Mapping[str, Any], retried: int = 0
    ) -> None:
        """One span for what a single response or request carries (a push of deliveries, a
        request's acks), ended at once: the child of the item's context when there is one item,
        else linked to each item's (the first MAX_LINKS), as the messaging conventions do for
        batches. ``retried``: redeliveries among them (a lone redelivery also links to its context)."""
        if self._tracer is None:
            return
        attrs = dict(attributes)
        if len(parents) == 1:
            parent = parents[0]
            links = (self._link_to(parent, "retry"),) if retried and parent else ()
        else:
            parent = None
            attrs["messaging.batch.message_count"] = len(parents)
            links = tuple(self._link_to(p, "message") for p in parents[:MAX_LINKS] if p)
        if retried:
            attrs["a2a.redelivered"] = retried
        self._start(operation, parent, "consumer", attrs, links, None).end()

    def _link_to(self, traceparent: str, why: str) -> Any:
        return self._link(self._span_context_of(traceparent), {"a2a.link": why} if why == "retry" else None)

    def _span_context_of(self, traceparent: str) -> Any:
        # traceparent was validated (valid()) before it was stored: fixed offsets
        return self._span_context(
            int(traceparent[3:35], 16),
            int(traceparent[36:52], 16),
            is_remote=True,
            trace_flags=self._flags(int(traceparent[53:55], 16)),
        )

    def _start(
        self,
        operation: str,
        parent: str | None,
        kind: str,
        attributes: Mapping[str, Any] | None,
        links: tuple[Any, ...],
        start_ns: int | None,
    ) -> Span:
        assert self._tracer is not None
        ctx = self._in_context(self._remote(self._span_context_of(parent))) if parent else None
        attrs = dict(self._base[operation])
        if attributes:
            for k, v in attributes.items():
                if v is not None:
                    attrs[k] = v
        return self._tracer.start_span(
            operation,
            context=ctx,
            kind=self._kinds[kind],
            attributes=attrs,
            links=links,
            start_time=start_ns,
        )


MAX_LINKS = 32  # a link costs about 4 us here: a push of 100 links its first 32
_OPERATION_TYPE = {
    "send": "send",
    "submit": "send",
    "deliver": "receive",
    "assign": "receive",
    "ack": "settle",
    "complete": "settle",
    "fail": "settle",
}


def traceparent_of(span: Span) -> str | None:
    sc = span.get_span_context()
    if not sc.is_valid:
        return None
    return f"00-{sc.trace_id:032x}-{sc.span_id:016x}-{int(sc.trace_flags):02x}"


def default_provider() -> Any:
    """The global provider when the application set one; else an SDK provider configured from
    ``OTEL_TRACES_EXPORTER`` when the SDK is installed; else the API's (spans are not recorded)."""
    from opentelemetry import trace

    current = trace.get_tracer_provider()
    if type(current).__name__ != "ProxyTracerProvider":
        return current
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
    except ImportError:
        return current
    provider = TracerProvider(
        resource=Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", SYSTEM)})
    )
    exporter_name = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower()
    exporter: Any = None
    if exporter_name == "console":
        exporter = ConsoleSpanExporter()
    elif exporter_name == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        except ImportError:
            raise BrokerError(
                "--tracing on: OTEL_TRACES_EXPORTER is otlp (the default) but the OTLP exporter is not"
                " installed: pip install opentelemetry-exporter-otlp, or set OTEL_TRACES_EXPORTER to"
                " console or none"
            ) from None
        exporter = OTLPSpanExporter()
    elif exporter_name != "none":
        raise BrokerError(f"OTEL_TRACES_EXPORTER={exporter_name!r}: use otlp, console or none")
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider
