"""Wake-ups between brokers that share one PostgreSQL database.

A broker wakes its own waiting streams after each commit (broker/core/wakeups.py, keys such as
``inbox:<agent>`` or ``ready:<capability>``). With several brokers, a subscriber on broker B must
also hear of a message sent through broker A. ``Relay`` carries the keys:

- ``publish(key)`` collects the keys a broker notified during one turn of its event loop and sends
  them in one ``NOTIFY`` (a coalesced notification per turn, not one per row or per key), from a
  connection of its own, *after* the commits that caused them. Not inside the write transaction: a
  transaction that notifies takes a cluster-wide lock at COMMIT, which would serialise every
  broker's commits behind each other. Keys that do not fit a notification's 8000 bytes become
  ``*`` (wake everything).
- a listener thread ``LISTEN``s and hands the other brokers' keys to the core, which wakes the
  streams waiting on them; they then claim from the database, where the change already is.
- a notification can be lost (the listener's connection drops, a transaction-mode pooler such as
  PgBouncer does not carry LISTEN at all): every ``poll_interval_s`` the core wakes all its idle
  streams anyway, so a lost notification delays a delivery by that much, and never loses it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import random
import threading
from collections.abc import Callable

import psycopg

from ...models.stats import StorageStats

log = logging.getLogger("broker.storage")

CHANNEL = "a2a_broker_wakeups"
_MAX_PAYLOAD = 7900  # PostgreSQL refuses a payload of 8000 bytes or more
EVERYTHING = "*"


class Relay:
    def __init__(self, url: str, poll_interval_s: float, stats: StorageStats | None = None) -> None:
        self.url = url
        self.poll_interval_s = poll_interval_s
        self.tag = f"{random.getrandbits(48):012x}"  # this broker, in its notifications
        self._pending: set[str] = set()
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

    async def start(self, deliver: Callable[[list[str]], None], poll: Callable[[], None]) -> None:
        """Hand other brokers' keys to ``deliver``; call ``poll`` every ``poll_interval_s``."""
        self._loop = asyncio.get_running_loop()
        ready = threading.Event()
        self._listener = threading.Thread(
            target=self._listen, args=(deliver, poll, ready), name="pg-listen", daemon=True
        )
        self._listener.start()
        await asyncio.get_running_loop().run_in_executor(None, ready.wait, 10.0)
        self._poller = asyncio.create_task(self._poll(poll), name="pg-poll")

    async def close(self) -> None:
        self._stop.set()
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
        self._pending.add(key)
        if not self._flush_scheduled and self._loop is not None and not self._stop.is_set():
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        keys, self._pending = self._pending, set()
        body = "\n".join(sorted(keys))
        if len(body) > _MAX_PAYLOAD:
            body = EVERYTHING
        self._sender.submit(self._send, f"{self.tag}\n{body}")

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

    def _listen(
        self, deliver: Callable[[list[str]], None], poll: Callable[[], None], ready: threading.Event
    ) -> None:
        loop = self._loop
        assert loop is not None
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    ready.set()
                    loop.call_soon_threadsafe(poll)  # what was sent while not listening
                    while not self._stop.is_set():
                        for n in conn.notifies(timeout=0.5):
                            if self._stop.is_set():
                                break
                            tag, _, body = n.payload.partition("\n")
                            if tag == self.tag:
                                continue
                            self.received += 1
                            self.stats.notifications_received += 1
                            if body == EVERYTHING:
                                loop.call_soon_threadsafe(poll)
                            else:
                                loop.call_soon_threadsafe(deliver, body.split("\n"))
            except psycopg.Error as exc:
                log.warning("listening for other brokers failed (retrying in 1 s): %s", exc)
                ready.set()
                self._stop.wait(1.0)
            except RuntimeError:  # the event loop closed under us: the broker is stopping
                return

    async def _poll(self, poll: Callable[[], None]) -> None:
        while True:
            await asyncio.sleep(self.poll_interval_s)
            poll()
