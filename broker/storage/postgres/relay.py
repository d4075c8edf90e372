"""What brokers that share one PostgreSQL database tell each other: wake-ups, and messages.

A broker wakes its own waiting streams after each commit (broker/core/wakeups.py, keys such as
``inbox:<agent>`` or ``ready:<capability>``). With several brokers, a subscriber on broker B must
also hear of a message sent through broker A; a worker's stream on B, of its task cancelled
through A; a Watch on B, of A's events. ``Relay`` carries them (the format: ``wire.py``):

- ``publish(key)`` and ``send(kind, body)`` collect what a broker has to say during one turn of
  its event loop and send it in one ``NOTIFY`` (more when it does not fit one), from a connection
  of its own, *after* the commits that caused it. Not inside the write transaction: a transaction
  that notifies takes a cluster-wide lock at COMMIT, which would serialise every broker's commits
  behind each other (a revocation, which is rare and must not be lost, is the exception: its own
  transaction notifies, ``Queries.tokens.changed``).
- a listener thread ``LISTEN``s and hands the other brokers' keys and messages to the core
  (``ClusterPeer``), which wakes the streams waiting on them (they then claim from the database,
  where the change already is) or passes the messages on.
- a notification can be lost (the listener's connection drops, a transaction-mode pooler such as
  PgBouncer does not carry LISTEN at all): every ``poll_interval_s`` the core wakes all its idle
  streams anyway, and the listener looks whether a token was revoked since it last looked, so a
  lost notification delays a delivery or a revocation by that much, and never loses it. (Events
  are not replayed: task transitions are read from the database, ``history.py``.)
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import random
import threading
import time
from typing import Any

import psycopg

from ...models.stats import StorageStats
from ..base import ClusterPeer
from . import wire
from .history import History

log = logging.getLogger("broker.storage")

CHANNEL = wire.CHANNEL
EVERYTHING = wire.EVERYTHING
# How many tokens were revoked, and the last time: a change means a revocation this broker may
# not have heard of.
_REVOCATIONS = "SELECT count(revoked_at), coalesce(max(revoked_at), 0) FROM tokens"


def new_tag() -> str:
    """A broker's tag in its notifications (and on the history rows it writes)."""
    return f"{random.getrandbits(48):012x}"


class Relay:
    def __init__(
        self,
        url: str,
        poll_interval_s: float,
        stats: StorageStats | None = None,
        tag: str | None = None,
        history: History | None = None,
    ) -> None:
        self.url = url
        self.poll_interval_s = poll_interval_s
        self.tag = tag or new_tag()  # this broker, in its notifications
        self.history = history  # the other brokers' transitions (None: not offered)
        self._reading: asyncio.Future[None] | None = None
        self._read_again = False
        self._peer: ClusterPeer | None = None  # set by start
        self._keys: set[str] = set()
        self._messages: dict[str, None] = {}  # lines, in order, each once
        self._flush_scheduled = False
        self._sender = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="pg-notify")
        self._send_conn: psycopg.Connection[tuple[object, ...]] | None = None
        self._stop = threading.Event()
        self._listener: threading.Thread | None = None
        self._poller: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.sent = 0  # notifications sent (for tests)
        self.received = 0  # notifications heard from other brokers
        self.stats = stats or StorageStats()

    async def start(self, peer: ClusterPeer) -> None:
        """Hand other brokers' keys and messages to ``peer``; wake all of it every
        ``poll_interval_s``."""
        self._peer = peer
        self._loop = asyncio.get_running_loop()
        ready = threading.Event()
        self._listener = threading.Thread(
            target=self._listen, args=(peer, ready), name="pg-listen", daemon=True
        )
        self._listener.start()
        await asyncio.get_running_loop().run_in_executor(None, ready.wait, 10.0)
        self._poller = asyncio.create_task(self._poll(peer), name="pg-poll")

    async def close(self) -> None:
        self._stop.set()
        if self._reading is not None:
            self._reading.cancel()
            await asyncio.gather(self._reading, return_exceptions=True)
        if self._listener is not None:  # a notification of our own ends the listener's wait
            await asyncio.get_running_loop().run_in_executor(self._sender, self._send, f"{self.tag}\n")
        if self._poller is not None:
            self._poller.cancel()
            try:
                await self._poller
            except asyncio.CancelledError:
                pass
        if self._listener is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._listener.join, 5.0)
        await asyncio.get_running_loop().run_in_executor(self._sender, self._close_sender)
        self._sender.shutdown(wait=True)

    # -- out -------------------------------------------------------------------------------

    def publish(self, key: str) -> None:
        """Tell the other brokers that ``key`` was woken here (sent at the end of this loop turn)."""
        self._keys.add(key)
        self._schedule()

    def send(self, kind: str, body: str = "") -> None:
        """Tell the other brokers ``kind`` (``body``: one line), at the end of this loop turn."""
        self._messages[wire.line(kind, body)] = None
        self._schedule()

    def committed(self) -> None:
        """Task transitions were committed here: the brokers that follow them read them."""
        self.send(wire.HISTORY)

    def _schedule(self) -> None:
        if not self._flush_scheduled and self._loop is not None and not self._stop.is_set():
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        keys, self._keys = self._keys, set()
        messages, self._messages = self._messages, {}
        for payload in wire.payloads(self.tag, keys, messages):
            self._sender.submit(self._send, payload)

    def _send(self, payload: str) -> None:
        try:
            if self._send_conn is None or self._send_conn.closed:
                self._send_conn = psycopg.connect(self.url, autocommit=True)
                # A notification need not wait for the disk: lost in a crash, the poll covers it.
                self._send_conn.execute("SET synchronous_commit = off")
            self._send_conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))
            self.sent += 1
            self.stats.notifications_sent += 1
        except psycopg.Error as exc:  # the others' poll finds the work a little later
            log.warning("could not notify the other brokers: %s", exc)
            self._close_sender()

    def _close_sender(self) -> None:
        if self._send_conn is not None:
            self._send_conn.close()
            self._send_conn = None

    # -- in --------------------------------------------------------------------------------

    def _listen(self, peer: ClusterPeer, ready: threading.Event) -> None:
        loop = self._loop
        assert loop is not None
        revocations: Any = None  # as last read (None: not yet)
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    ready.set()
                    loop.call_soon_threadsafe(peer.wake_all)  # what was sent while not listening
                    looked = float("-inf")
                    wait = min(0.5, self.poll_interval_s)
                    while not self._stop.is_set():
                        if time.monotonic() - looked >= self.poll_interval_s:
                            looked = time.monotonic()
                            now = conn.execute(_REVOCATIONS).fetchone()
                            if revocations is not None and now != revocations:
                                loop.call_soon_threadsafe(peer.received, wire.TOKENS, "")
                            revocations = now
                        for n in conn.notifies(timeout=wait):
                            if self._stop.is_set():
                                break
                            self._heard(peer, loop, n.payload)
            except psycopg.Error as exc:
                log.warning("listening for other brokers failed (retrying in 1 s): %s", exc)
                ready.set()
                self._stop.wait(1.0)
            except RuntimeError:  # the event loop closed under us: the broker is stopping
                return

    def _heard(self, peer: ClusterPeer, loop: asyncio.AbstractEventLoop, payload: str) -> None:
        tag, keys, messages = wire.parse(payload)
        if tag == self.tag:
            return
        self.received += 1
        self.stats.notifications_received += 1
        if EVERYTHING in keys:
            loop.call_soon_threadsafe(peer.wake_all)
        elif keys:
            loop.call_soon_threadsafe(peer.wake, keys)
        for kind, body in messages:
            if kind == wire.HISTORY:
                loop.call_soon_threadsafe(self._history_due, peer)
            else:
                loop.call_soon_threadsafe(peer.received, kind, body)

    async def _poll(self, peer: ClusterPeer) -> None:
        while True:
            await asyncio.sleep(self.poll_interval_s)
            peer.wake_all()
            self._history_due(peer)

    # -- the other brokers' task transitions ------------------------------------------------

    async def follow(self) -> None:
        """Hand the other brokers' transitions committed from now on to the peer, until
        ``unfollow``."""
        if self.history is not None:
            await self.history.follow()

    def unfollow(self) -> None:
        if self.history is not None:
            self.history.unfollow()

    async def caught_up(self) -> None:
        """A read of the history that starts now, done (a message that overtook the transitions
        committed with it, such as a session's end, waits for this before it is told)."""
        if self._peer is None:
            return
        if self._reading is None:
            self._history_due(self._peer)
        else:
            self._read_again = True  # the read under way may predate what we wait for
        if self._reading is not None:
            await asyncio.shield(self._reading)

    def _history_due(self, peer: ClusterPeer) -> None:
        """Read what the other brokers committed (one read at a time; one more after it when
        told again meanwhile)."""
        if self.history is None or not self.history.following or self._stop.is_set():
            return
        if self._reading is not None:
            self._read_again = True
            return
        self._reading = asyncio.ensure_future(self._read_history(peer, self.history))

    async def _read_history(self, peer: ClusterPeer, history: History) -> None:
        try:
            again = True
            while again:
                self._read_again = False
                got = await history.read()
                if got:
                    peer.transitions(got)
                again = self._read_again
        except Exception as exc:  # storage down: the next notification or poll reads again
            log.warning("could not read the other brokers' transitions: %r", exc)
        finally:
            self._reading = None
