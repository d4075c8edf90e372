"""Open streams end when the credentials they were opened with are withdrawn.

A stream (Subscribe, Listen, Consume, Work, Publish, Watch...) is authenticated once, when it
opens; nothing would look at its token again. So each stream is registered here: opened with a
token, under the token's id, so that revoking the token ends it; and with credentials that expire
(a token's ``expires_at``, a JWT's ``exp``), a timer ends it at that instant. It ends
UNAUTHENTICATED, and what it held is released as when its client goes away (its deliveries back
to pending) and more: the leases handed out on a Listen or Work stream go back to the queue at once
(the service layer asks ``withdrawn()``), for the agent can no longer complete them.

How a revocation is noticed is the authenticator's: ``generation()`` changes when tokens changed
(``TokenAuthenticator``: the marker file ``a2a-broker tokens revoke`` touches), looked at every
``POLL_S`` while a stream with a token is open; and every ``recheck_s`` the open streams' tokens
are read again regardless (a token revoked without the marker). ``withdrawn(ids)`` says which
are no longer valid.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from typing import Protocol, runtime_checkable

from ..clock import now_us
from .identity import Identity

log = logging.getLogger("broker.audit")

POLL_S = 0.2  # how often the authenticator is asked whether tokens changed
# A stream asked to end while its handler waits for a write to complete ends at its next item; if
# the write does not complete (a client that stopped reading), it is cancelled after this long.
LATE_S = 0.5


@runtime_checkable
class Revocable(Protocol):
    recheck_s: float

    def generation(self) -> int:
        """Changes whenever tokens were seen to change (cheap: no storage read)."""

    async def withdrawn(self, token_ids: list[str]) -> dict[str, str]:
        """Of these token ids, those no longer valid, each with why."""


class Guard:
    """One open stream, as the security interceptor runs it: ``stop`` ends it."""

    __slots__ = ("task", "reason", "inside", "_timers")

    def __init__(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.task = task
        self.reason: str | None = None  # why the stream was ended (None: it was not)
        self.inside = False  # the handler is in the service's generator (not writing a response)
        self._timers: list[asyncio.TimerHandle] = []

    def stop(self, reason: str) -> None:
        """End the stream: at once when the service's generator is waiting (the interceptor takes
        the cancellation as the end), else at its next item, or soon if the write never ends."""
        if self.reason is not None or self.task.done():
            return
        self.reason = reason
        if self.inside:
            self.task.cancel()
        else:
            self._timers.append(asyncio.get_running_loop().call_later(LATE_S, self._late))

    def _late(self) -> None:
        if not self.task.done():
            self.task.cancel()

    def later(self, delay_s: float, reason: str) -> None:
        self._timers.append(asyncio.get_running_loop().call_later(max(0.0, delay_s), self.stop, reason))

    def close(self) -> None:
        for t in self._timers:
            t.cancel()
        self._timers.clear()


# The guard of the stream being served (None: not a stream, or no security interceptor).
STREAM: contextvars.ContextVar[Guard | None] = contextvars.ContextVar("a2a_broker_stream", default=None)


def withdrawn() -> str | None:
    """Why the stream being served is ending, when its credentials were withdrawn (then what it
    holds goes back at once rather than waiting out its lease); None otherwise."""
    guard = STREAM.get()
    return None if guard is None else guard.reason


class OpenStreams:
    """The open streams by token id, and the watch that ends them when their token is withdrawn."""

    def __init__(self, authenticator: object) -> None:
        self._auth = authenticator if isinstance(authenticator, Revocable) else None
        self._by_token: dict[str, set[Guard]] = {}
        self._watcher: asyncio.Task[None] | None = None

    def opened(self, who: Identity, guard: Guard) -> None:
        if who.expires_us is not None:
            what = f"token {who.credential}" if who.credential else "the credentials"
            guard.later((who.expires_us - now_us()) / 1e6, f"authorization: {what} has expired")
        if who.credential and self._auth is not None:
            self._by_token.setdefault(who.credential, set()).add(guard)
            if self._watcher is None:
                self._watcher = asyncio.ensure_future(self._watch(self._auth))

    def closed(self, who: Identity, guard: Guard) -> None:
        guard.close()
        guards = self._by_token.get(who.credential)
        if guards is not None:
            guards.discard(guard)
            if not guards:
                del self._by_token[who.credential]

    async def _watch(self, auth: Revocable) -> None:
        seen, checked = auth.generation(), time.monotonic()
        try:
            while self._by_token:
                await asyncio.sleep(POLL_S)
                gen = auth.generation()
                if gen == seen and time.monotonic() - checked < auth.recheck_s:
                    continue
                try:
                    gone = await auth.withdrawn(list(self._by_token))
                except Exception as exc:  # storage down: look again at the next round
                    log.warning("could not check the tokens of open streams: %r", exc)
                    continue
                seen, checked = gen, time.monotonic()
                for token_id, why in gone.items():
                    guards = list(self._by_token.get(token_id, ()))
                    if guards:
                        log.info("ending %d stream(s) of token %s: %s", len(guards), token_id, why)
                    for guard in guards:
                        guard.stop(why)
        finally:
            self._watcher = None

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            try:
                await self._watcher
            except asyncio.CancelledError:
                pass
