"""uvicorn embedded in the broker: the socket is bound before serving (a busy port fails the
start, port 0 tells the port chosen), no signal handlers of its own (the broker's SIGTERM,
SIGINT and SIGHUP stay the broker's), no lifespan, no logging configuration, and TLS from the
broker's certificate files (``security.tls.HttpTls``, reloaded without a restart)."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn

from ..errors import BrokerError
from ..security.tls import HttpTls

log = logging.getLogger("broker.http")

GRACE_S = 1  # open HTTP streams (console feed, A2A SSE) get this long to end at shutdown


def _with_peercert(protocol: type[Any]) -> type[Any]:
    """uvicorn's HTTP protocol, telling the application the connection's verified client
    certificate (ASGI's ``tls`` extension: ``scope["extensions"]["tls"]["peercert"]``)."""

    class WithPeerCert(protocol):
        def connection_made(self, transport: asyncio.Transport) -> None:
            super().connection_made(transport)
            cert = transport.get_extra_info("peercert")
            if cert:
                inner: Any = getattr(self, "app")  # noqa: B009 (set by uvicorn's __init__)

                async def app(scope: Any, receive: Any, send: Any) -> None:
                    scope.setdefault("extensions", {})["tls"] = {"peercert": cert}
                    await inner(scope, receive, send)

                self.app = app

    return WithPeerCert


class _Server(uvicorn.Server):
    """uvicorn's server with the broker's tick: TLS files are checked once a second."""

    def __init__(self, config: uvicorn.Config, tick: Callable[[], None]) -> None:
        super().__init__(config)
        self._tick = tick

    async def on_tick(self, counter: int) -> bool:
        if counter % 10 == 0:
            self._tick()
        return await super().on_tick(counter)


def _bind(address: str) -> socket.socket:
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, int(port)))
        sock.listen(1024)
    except OSError as exc:
        sock.close()
        raise BrokerError(f"--http-address {address}: {exc.strerror or exc}") from None
    sock.setblocking(False)
    return sock


class HttpListener:
    def __init__(
        self,
        address: str,
        app: Any,
        tls: HttpTls | None = None,
        on_stop: list[Callable[[], Awaitable[None]]] | None = None,
    ) -> None:
        self.address = address
        self.app = app
        self.tls = tls
        self.on_stop = on_stop or []  # run first at stop: ends what would hold a connection open
        self.port = 0
        self._sock: socket.socket | None = None
        self._server: _Server | None = None
        self._loop: asyncio.Task[None] | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.tls is not None else "http"

    async def start(self) -> int:
        self._sock = _bind(self.address)
        self.port = self._sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            lifespan="off",
            log_config=None,
            access_log=False,
            ws="none",
            http="h11",
            timeout_graceful_shutdown=GRACE_S,
            server_header=False,
        )
        config.load()
        config.ssl = self.tls.context if self.tls is not None else None
        if self.tls is not None and self.tls.client_ca:
            config.http_protocol_class = _with_peercert(config.http_protocol_class)
        server = _Server(config, self.tls.refresh if self.tls is not None else lambda: None)
        server.lifespan = config.lifespan_class(config)
        await server.startup(sockets=[self._sock])
        self._server = server
        self._loop = asyncio.ensure_future(server.main_loop())
        host = self.address.rpartition(":")[0]
        log.info("http listening", extra={"address": f"{host}:{self.port}", "scheme": self.scheme})
        return self.port

    async def stop(self) -> None:
        for ending in self.on_stop:
            await ending()
        self.on_stop = []
        server, self._server = self._server, None
        if server is None:
            return
        server.should_exit = True
        if self._loop is not None:
            await self._loop
        await server.shutdown(sockets=[self._sock] if self._sock else None)
