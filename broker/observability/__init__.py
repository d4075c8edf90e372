"""What an operator sees: Prometheus metrics (metrics.py), RPC durations and the access log
(rpc.py), and the HTTP listener serving them with the health checks and the console (http.py).
It reads the core and the storage; nothing below it knows it exists. OpenTelemetry tracing lives
at the gRPC edge (broker/servicers/tracing.py)."""

from __future__ import annotations

from .http import HttpListener
from .metrics import Metrics
from .rpc import RpcMetrics

__all__ = ["HttpListener", "Metrics", "RpcMetrics"]
