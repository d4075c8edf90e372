"""Assembling and running the broker: storage, core, servicers, health, reflection, sweeper."""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from starlette.applications import Starlette

from . import gateway, reflection
from . import mcp as mcp_http
from .clock import Clock
from .config import Settings
from .console import Console
from .core.cluster import Cluster
from .core.mailbox import Mailbox
from .core.registry import Registry
from .core.taskqueue import TaskQueue
from .errors import BrokerError
from .federation import Federation
from .observability import Metrics, OperatorRoutes, RpcMetrics
from .pb import (
    admin_pb2,
    admin_pb2_grpc,
    agents_pb2,
    agents_pb2_grpc,
    messaging_pb2,
    messaging_pb2_grpc,
    tasks_pb2,
    tasks_pb2_grpc,
)
from .security import authenticator, http_gate
from .security import interceptor as security_interceptor
from .security.admin import TokenAdmin
from .security.exposure import WARN_EVERY_S, InsecureReminder, exposure_problem, warn
from .security.tls import CertificateFiles, HttpTls, server_credentials
from .servicers.admin import AdminServicer
from .servicers.agents import AgentRegistryServicer
from .servicers.malformed import MalformedRequests
from .servicers.messaging import MessagingServicer
from .servicers.tasks import TaskQueueServicer
from .servicers.tracing import Tracing
from .storage import Storage, open_storage, redact
from .sweeper import Sweeper
from .web import HttpListener

if TYPE_CHECKING:
    from .security.interceptor import Security

log = logging.getLogger("broker.server")

SERVICE_NAMES = (
    admin_pb2.DESCRIPTOR.services_by_name["Admin"].full_name,
    agents_pb2.DESCRIPTOR.services_by_name["AgentRegistry"].full_name,
    tasks_pb2.DESCRIPTOR.services_by_name["TaskQueue"].full_name,
    messaging_pb2.DESCRIPTOR.services_by_name["Messaging"].full_name,
)


@dataclass
class Broker:
    """A running broker. ``port`` is the bound port (useful with address port 0)."""

    settings: Settings
    server: grpc.aio.Server
    port: int
    storage: Storage
    registry: Registry
    mailbox: Mailbox
    tasks: TaskQueue
    sweeper: Sweeper
    health: health.aio.HealthServicer
    tls: CertificateFiles | None = None  # reloaded on change or SIGHUP
    metrics: Metrics | None = None
    http: HttpListener | None = None  # every HTTP surface (None: --http-address off)
    federation: Federation | None = None  # links to peer brokers (None: no --peers)
    security: Security | None = None  # authentication, policy, quotas (None: --auth none, no mTLS)
    operator: OperatorRoutes | None = None  # /healthz, /readyz, /metrics
    a2a: gateway.Gateway | None = None  # the A2A gateway (None: --a2a-gateway off or no a2a-sdk)
    mcp: mcp_http.McpEndpoint | None = None  # /mcp (None: --mcp off, no HTTP listener or no MCP SDK)
    cluster: Cluster | None = None  # the other brokers of the database (None: there are none)

    @property
    def http_address(self) -> str | None:
        if self.http is None:
            return None
        host = self.settings.http_address.rsplit(":", 1)[0]
        return f"{host}:{self.http.port}"

    @property
    def http_url(self) -> str | None:
        """The HTTP listener's base URL, ``http(s)://host:port``."""
        if self.http is None:
            return None
        return f"{self.http.scheme}://{self.http_address}"

    @property
    def console_url(self) -> str | None:
        """Where the web console is (the HTTP listener's root), or None without the listener."""
        return f"{self.http_url}/" if self.http_url is not None else None

    @property
    def address(self) -> str:
        host = self.settings.address.rsplit(":", 1)[0]
        return f"{host}:{self.port}"

    async def stop(self, grace: float | None = None) -> None:
        """Graceful shutdown: refuse new calls, end streams, finish commits, close storage."""
        grace = self.settings.shutdown_grace_s if grace is None else grace
        if self.operator is not None:
            self.operator.stopping = True  # /readyz: 503 from now on
        await self.health.enter_graceful_shutdown()
        if self.federation is not None:  # stop taking the peers' tasks first
            await self.federation.stop()
        await self.sweeper.stop()
        await self.tasks.schedules.close()  # no firing from now on
        if self.a2a is not None:
            await self.a2a.stop()
        if self.mcp is not None:  # its waits and watches are gRPC calls to this broker: end them first
            await self.mcp.stop()
        # Ends Subscribe streams now rather than after the grace period, and refuses new Sends
        # (UNAVAILABLE, nothing stored). The streams' deliveries stay held until mailbox.close(),
        # so that an Ack answered OK during the grace period sticks.
        self.mailbox.shutdown()
        self.registry.shutdown()  # and WatchAgents streams
        self.tasks.shutdown()  # ends Listen streams and waiting Claims now, likewise
        # Sends already accepted commit and are answered, and Sends and Acks stop arriving, before
        # the server cancels anything: a Send or an Ack ends OK or UNAVAILABLE, never CANCELLED.
        await self.mailbox.drain(grace)
        await self.server.stop(grace)
        if self.http is not None:  # its streams end with the core's; nothing reads storage after
            await self.http.stop()
        # Releases every delivery still held (a stream blocked in a write too), before storage closes.
        await self.mailbox.close()
        if self.security is not None:
            await self.security.close()
        if self.cluster is not None:
            await self.cluster.close()
        await self.storage.close()
        log.info("broker stopped")


def keepalive_options(settings: Settings) -> list[tuple[str, int]]:
    """HTTP/2 keepalive: an open Subscribe or Listen stream keeps its agent online (see
    ``Registry``), so the server pings every connection and drops one whose peer stops answering;
    the dead peer's streams then end, and its agents go offline a liveness timeout later."""
    every_ms = max(1000, int(settings.liveness_timeout * 1000 / 3))
    return [
        ("grpc.keepalive_time_ms", every_ms),  # ping each connection this often
        ("grpc.keepalive_timeout_ms", every_ms),  # and close it if the ping is not answered in time
        ("grpc.http2.ping_timeout_ms", every_ms),  # (grpc core times keepalive pings out by this too)
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),  # a quiet stream is pinged for as long as it lasts
        # Clients may send their own keepalive pings as often as every 5 s without a GOAWAY.
        ("grpc.http2.min_ping_interval_without_data_ms", 5000),
    ]


async def start_server(settings: Settings, tracer_provider: Any = None, clock: Clock | None = None) -> Broker:
    """Open storage, build the services, bind, and start serving. ``tracer_provider``: the
    OpenTelemetry provider for ``--tracing on`` (default: the process's, see tracing.py);
    ``clock``: the time the core and the sweeper run on (default: the system's; tests pass
    one they advance)."""
    clock = clock or Clock()
    exposed = exposure_problem(settings)
    if exposed and not settings.insecure:
        raise BrokerError(f"refusing to start: {exposed}; add them, or pass --insecure to accept the risk")
    if exposed:
        warn(exposed)
    storage = await open_storage(settings)
    http: HttpListener | None = None
    a2a: gateway.Gateway | None = None
    mcp: mcp_http.McpEndpoint | None = None
    try:
        registry = Registry(storage, settings, clock)
        mailbox = Mailbox(storage, registry, settings, clock)
        tasks = TaskQueue(storage, registry, settings, clock)
        metrics = Metrics(storage, mailbox, tasks, settings.metrics_top_n)
        observed = settings.http_address != "off" or settings.access_log
        security = security_interceptor(settings, storage)
        # one authenticator for every surface: its cache and revocations are the gRPC port's
        auth = security.authenticator if security is not None else authenticator(settings, storage)
        cluster = None
        if storage.relay is not None:  # other brokers share the database
            cluster = Cluster(storage.relay, registry, [mailbox.wakeups, tasks.dispatch.signals], tasks, auth)
            await cluster.start()
        server = grpc.aio.server(
            # MalformedRequests first: bytes that do not parse are refused before anything else.
            interceptors=[
                MalformedRequests(),
                # Outside security, so that refusals are timed too; not there when nothing can read
                # it (no HTTP listener, no access log).
                *([RpcMetrics(metrics, settings.access_log)] if observed else []),
                *([security] if security is not None else []),
            ],
            options=[
                ("grpc.max_receive_message_length", settings.max_request_bytes),
                ("grpc.max_send_message_length", max(settings.max_request_bytes, 64 * 1024 * 1024)),
                # Several processes of one broker share the port (broker/processes.py); otherwise a
                # second broker on the port is refused.
                ("grpc.so_reuseport", int(settings.processes > 1)),
                *keepalive_options(settings),
            ],
        )
        agents_pb2_grpc.add_AgentRegistryServicer_to_server(AgentRegistryServicer(registry), server)
        tracing = Tracing(settings.tracing == "on", tracer_provider)
        messaging_pb2_grpc.add_MessagingServicer_to_server(MessagingServicer(mailbox, tracing), server)
        tasks_pb2_grpc.add_TaskQueueServicer_to_server(TaskQueueServicer(tasks, tracing), server)
        admin_pb2_grpc.add_AdminServicer_to_server(AdminServicer(TokenAdmin(storage, auth, clock)), server)

        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        a2a_on = gateway.wanted(settings.a2a_gateway)
        if settings.reflection_on:
            reflection.enable(
                (
                    *SERVICE_NAMES,
                    *([gateway.SERVICE_NAME, gateway.LEGACY_SERVICE_NAME] if a2a_on else []),
                    health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                ),
                server,
            )
        tls = None
        if settings.tls_cert and settings.tls_key:
            tls = CertificateFiles(settings.tls_cert, settings.tls_key, settings.tls_client_ca)
            port = server.add_secure_port(settings.address, server_credentials(tls))
        else:
            port = server.add_insecure_port(settings.address)
        if port == 0:
            raise OSError(f"could not bind {settings.address}")
        if a2a_on:
            host = settings.address.rsplit(":", 1)[0]
            a2a = gateway.Gateway(tasks, registry, settings, f"{host}:{port}")
            a2a.serve_grpc(server)
            metrics.registry.register(a2a.collector())
        if mcp_http.wanted(settings.mcp, settings.http_address):  # its own loopback port, added here
            mcp = mcp_http.McpEndpoint(settings, server)
        operator: OperatorRoutes | None = None
        console: Console | None = None
        if settings.http_address != "off":  # bound before gRPC serves: a busy port fails the start
            operator = OperatorRoutes(settings, metrics, storage, auth)
            http_tls = HttpTls(tls.cert, tls.key, tls.client_ca) if tls is not None else None
            console = Console(
                settings,
                registry,
                mailbox,
                tasks,
                metrics.collector,
                auth,
                secure_cookie=http_tls is not None,
            )
            routes = [
                *operator.routes(),
                *console.routes(),
                *(a2a.routes(http_gate(settings, security)) if a2a is not None else []),
                *(mcp.routes() if mcp is not None else []),
            ]
            if mcp is not None:
                await mcp.start()
            http = HttpListener(settings.http_address, Starlette(routes=routes), http_tls, [console.stop])
            await http.start()
            console.start()
            if a2a is not None:
                a2a.listening(f"{http.scheme}://{settings.http_address.rsplit(':', 1)[0]}:{http.port}")
        if a2a is not None:
            await a2a.start()
        await server.start()
        for name in ("", *SERVICE_NAMES):
            await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)

        sweeper = Sweeper(
            settings.sweeper_period_s,
            [
                ("registry", registry.sweep),
                ("mailbox", mailbox.sweep),
                ("tasks", tasks.sweep),
                ("schedules", tasks.schedules.sweep),
                *(
                    [("insecure-reminder", InsecureReminder(exposed, first_after_s=WARN_EVERY_S))]
                    if exposed
                    else []
                ),
            ],
            clock,
        )
        sweeper.start()
        federation = None
        if settings.peers:
            address = f"{settings.address.rsplit(':', 1)[0]}:{port}"
            federation = Federation(settings, tasks, registry, mailbox, address)
            federation.start()
    except BaseException:
        if a2a is not None:
            await a2a.stop()
        if mcp is not None:
            await mcp.stop()
        if http is not None:
            await http.stop()
        await storage.close()
        raise
    broker = Broker(
        settings,
        server,
        port,
        storage,
        registry,
        mailbox,
        tasks,
        sweeper,
        health_servicer,
        tls,
        metrics,
        http,
        federation,
        security,
        operator,
        a2a,
        mcp,
        cluster,
    )
    log.info(
        "broker serving",
        extra={
            "address": broker.address,
            "db": redact(settings.db),
            "console": broker.console_url or "off",
            "loop": type(asyncio.get_running_loop()).__module__.split(".")[0],  # uvloop or asyncio
        },
    )
    return broker


async def serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Before the port opens: a SIGTERM that comes as soon as it accepts connections is a request
    # to shut down gracefully, not a kill.
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    broker = await start_server(settings)
    if broker.tls is not None:
        grpc_tls, http_tls = broker.tls, broker.http.tls if broker.http else None

        def reload_tls() -> None:  # the gRPC port's and the HTTP listener's files alike
            grpc_tls.request_reload()
            if http_tls is not None:
                http_tls.request_reload()

        loop.add_signal_handler(signal.SIGHUP, reload_tls)
    console = f"; console at {broker.console_url}" if broker.console_url else ""
    print(f"a2a-broker listening on {broker.address} (db: {redact(settings.db)}){console}", flush=True)
    await stop.wait()
    log.info("shutdown requested")
    await broker.stop()
