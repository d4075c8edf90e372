"""What an operator sees: Prometheus metrics (metrics.py), RPC durations and the access log
(rpc.py), and the HTTP routes serving them with the health checks (http.py; the listener that serves
them with the console and the A2A bindings is ``broker/web``).
It reads the core and the storage; nothing below it knows it exists. OpenTelemetry tracing lives
at the gRPC edge (broker/servicers/tracing.py)."""

from __future__ import annotations

from .http import OperatorRoutes
from .metrics import Metrics
from .rpc import RpcMetrics

__all__ = ["OperatorRoutes", "Metrics", "RpcMetrics"]
