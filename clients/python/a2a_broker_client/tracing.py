"""W3C trace context for the calls that start or finish work (send, submit, ack, complete, fail).

The broker stores the ``traceparent`` a ``Send`` or ``Submit`` call carries with the message or
task and hands it to the receiver (the message's ``traceparent`` header, ``Task.traceparent``), so
a trace follows the work from the orchestrator to the agent and back. Each such method takes a
``traceparent=`` keyword; without it, the current OpenTelemetry span's context is sent when
opentelemetry-api is installed and a span is current (nothing otherwise).
"""

from __future__ import annotations

from typing import Any

_inject: Any = None  # opentelemetry.propagate.inject, once looked up (False: not installed)


def current_traceparent() -> str | None:
    """The current OpenTelemetry span's traceparent, or None (no span, or no OpenTelemetry)."""
    global _inject
    if _inject is None:
        try:
            from opentelemetry.propagate import inject

            _inject = inject
        except ImportError:
            _inject = False
    if _inject is False:
        return None
    carrier: dict[str, str] = {}
    _inject(carrier)
    return carrier.get("traceparent")


def trace_metadata(traceparent: str | None = None) -> tuple[tuple[str, str], ...] | None:
    """The call metadata carrying ``traceparent`` (or the current span's), or None."""
    tp = traceparent or current_traceparent()
    return (("traceparent", tp),) if tp else None
