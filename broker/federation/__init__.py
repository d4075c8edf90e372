"""Federation: this broker joins peer brokers as an agent of type ``broker`` and runs, with its own
agents, the tasks they hand it (``link.PeerLink``, one per configured peer; the rules are
``broker.domain.federation``'s). Beside the servicers: a client of the peers (each link runs the
Python client's ``Worker``, a2a_broker_client, imported only when peers are configured), and of
the local core.

Tasks and anycast messages cross; see the README's "Federation". Configured with
``--peers NAME=HOST:PORT,...``, ``--broker-id`` (how this broker is known to its
peers), and optionally ``--peer-token`` and ``--peer-ca`` (a token the peers issued to this broker,
and the CA of their TLS certificates).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import Settings
    from ..core.mailbox import Mailbox
    from ..core.registry import Registry
    from ..core.taskqueue import TaskQueue
    from .link import PeerLink


def parse_peers(text: str) -> list[tuple[str, str]]:
    """``NAME=HOST:PORT,...`` -> [(name, address)]."""
    out = []
    for item in filter(None, (p.strip() for p in text.split(","))):
        name, eq, address = item.partition("=")
        if not eq or not name or not address:
            raise ValueError(f"a peer is NAME=HOST:PORT, not {item!r}")
        out.append((name, address))
    return out


class Federation:
    def __init__(
        self, settings: Settings, tasks: TaskQueue, registry: Registry, mailbox: Mailbox, address: str
    ) -> None:
        from .link import PeerLink  # the client library, only with peers

        broker_id = settings.broker_id or address
        self.links: list[PeerLink] = [
            PeerLink(n, a, settings, tasks, registry, mailbox, broker_id)
            for n, a in parse_peers(settings.peers)
        ]
        self._runs: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._runs = [asyncio.ensure_future(link.run()) for link in self.links]

    async def stop(self) -> None:
        for run in self._runs:
            run.cancel()
        await asyncio.gather(*self._runs, return_exceptions=True)
        for link in self.links:
            await link.stop()
