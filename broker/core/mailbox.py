"""The messaging service: durable sends, push delivery with acks, redelivery, dead letters,
expiry, and the wake-ups after each commit. The rules of a copy's life (due, claim order, dead
letters, expiry, retention) are in broker/domain/messages.py; subscriptions in subscriptions.py.

The database holds every message copy and its state; the mailbox holds only
what is about live streams: which streams to wake for which agent or
capability, and the timer for scheduled messages. Which stream holds which
delivery (so an ack frees room on the right stream, and a stream that ends
releases what it holds at once) is the ledger's (ledger.py). Everything it
learns from storage it learns after the commit.

Concurrent Send calls share write jobs (see coalescer.py), and a send claims for
a subscribed recipient in its own transaction (a hand-off, see subscriptions.py):
a delivered message costs one commit, not two.

Anycast copies are stored once with no recipient and taken by the first
subscriber with the capability that has room (competing consumers, as a
work queue with prefetch): a message never waits for an agent that is busy,
offline or gone while another could take it, and the spread follows each
agent's ``max_in_flight``. The alternative, choosing the agent at send time,
would strand messages on an agent that stops reading.
"""

from __future__ import annotations

import asyncio
import builtins
import logging

from ..clock import Clock, s_to_us
from ..config import Settings
from ..domain import marks
from ..domain import messages as rules
from ..domain.messages import Audience
from ..errors import BrokerError, FailedPrecondition, NotFound, StorageUnavailable
from ..models.agents import AgentGone, AgentStatus
from ..models.messages import (
    IN_REPLY_TO,
    Conversation,
    Message,
    MessageFilter,
    MessageStatus,
    NackInput,
    NewMessage,
    SendResult,
    SubscribeInput,
)
from ..models.stats import MessageStats
from ..storage.base import Storage
from ..storage.message_store import MessageChanges, SendOutcome
from .coalescer import Coalescer
from .ledger import Ledger, Reserved
from .registry import Registry
from .subscriptions import Subscription
from .topics import Topics
from .wakeups import DueTimer, Wakeups, audience_key, subscriber_keys, subscription_key

log = logging.getLogger("broker.mailbox")

SWEEP_LIMIT = 5000  # rows per category per sweep round: keeps the write job short
# Send calls coalesce into at most this many write jobs in flight: a Send that arrives while they
# are all committing joins the next group. The writer's fixed cost per commit (~300 us of CPU
# here) was what limited 64-in-flight Sends, not the inserts.
MAX_SEND_JOBS = 1
# At shutdown, the server stops once no Send or Ack has been taken in for this long (see Mailbox.drain).
CALLS_QUIET_S = 0.1


class Mailbox:
    def __init__(
        self, storage: Storage, registry: Registry, settings: Settings, clock: Clock | None = None
    ) -> None:
        self.storage = storage
        self.registry = registry
        self.settings = settings
        self.clock = clock = clock or Clock()
        # Subscriptions wait on inbox:<agent> and pool:<capability> (see wakeups.py).
        self.wakeups = Wakeups()
        self.started_at = clock.now_us()
        self.stats = MessageStats()
        self.ledger = Ledger(storage, clock, self.stats, self._changed, self._stream_closed)
        self._timer = DueTimer(self.wakeups.notify, clock)
        self._recovered = False
        self._recover_lock = asyncio.Lock()
        self._due_scanned = 0
        self._last_call = 0.0  # loop time of the last Send or Ack call (see drain)
        self._sends: Coalescer[NewMessage, SendResult] = Coalescer(
            self._send_group, what="send", max_jobs=MAX_SEND_JOBS
        )
        self.topics = Topics(storage, clock, self.ledger, self.wakeups.notify, self._woken)
        registry.on_agent_gone(self._agent_gone)

    # -- sending ---------------------------------------------------------------------------

    async def send(self, msg: NewMessage) -> SendResult:
        """One message. Concurrent Send calls are coalesced into shared write jobs (each message
        still succeeds or fails on its own: see coalescer.py)."""
        self._check_open()
        # After the check: a refused Send is no activity (see drain), else a client retrying its
        # refused Sends would hold a graceful shutdown for the whole grace period.
        self._last_call = asyncio.get_running_loop().time()
        if msg.in_reply_to is not None:
            await self._thread(msg, "")
        return await self._sends.submit(msg)

    def send_many(self, msgs: list[NewMessage]) -> list[asyncio.Future[SendResult]]:
        """Several messages, none a reply (a batched Publish entry): as many Sends, in the same
        write job, one future each (each succeeds or fails on its own), without a task each."""
        self._check_open()
        self._last_call = asyncio.get_running_loop().time()
        return self._sends.submit_many(msgs)

    async def _send_group(self, msgs: list[NewMessage]) -> list[SendResult | BrokerError]:
        return (await self._store(msgs, False)).results

    async def send_batch(self, msgs: list[NewMessage]) -> list[SendResult]:
        """A SendBatch: one job, all or nothing."""
        self._check_open()
        self._last_call = asyncio.get_running_loop().time()
        for i, m in enumerate(msgs):
            if m.in_reply_to is not None:
                await self._thread(m, f"messages[{i}].")
        out = await self._store(msgs, True)
        return out.results  # type: ignore[return-value]  # batch mode raises instead of returning errors

    async def _thread(self, msg: NewMessage, field: str) -> None:
        """A reply: it joins the answered message's conversation and correlation unless it names
        its own, and carries the answered id as a header."""
        assert msg.in_reply_to is not None
        try:
            original = await self.storage.get_message(msg.in_reply_to)
        except NotFound:
            raise NotFound(f"{field}in_reply_to: message {msg.in_reply_to!r} not found") from None
        if msg.conversation_id is None:
            msg.conversation_id = original.conversation_id
        if msg.correlation_id is None:
            msg.correlation_id = original.correlation_id
        msg.headers = {**msg.headers, IN_REPLY_TO: msg.in_reply_to}

    async def _store(self, msgs: list[NewMessage], batch: bool) -> SendOutcome:
        """Store the messages; a direct recipient's stream with room claims its copies in the same
        transaction (a hand-off, reserved on the ledger)."""
        reserved: Reserved = self.ledger.reserve(msgs)
        try:
            out = await self.storage.send_messages(
                msgs, self.clock.now_us(), batch, self.ledger.handoffs(reserved)
            )
        except BaseException:
            self.ledger.unreserve(reserved)
            raise
        self.stats.published += sum(
            len(r.message_ids) for r in out.results if isinstance(r, SendResult) and not r.duplicate
        )
        for agent in self.ledger.handed(reserved, out.claimed):
            out.wake.discard(Audience(agent, None))  # its stream took everything: nobody else need look
        self._woken(out.wake, out.scheduled)
        return out

    def _woken(self, wake: set[Audience], scheduled: list[tuple[int, Audience]]) -> None:
        """After a commit: wake the streams that may take the copies now, and later those due later."""
        for whom in wake:
            self.wakeups.notify(audience_key(whom))
        for due, whom in scheduled:
            self._timer.add(due, audience_key(whom))

    # -- delivering ------------------------------------------------------------------------

    async def subscribe(self, inp: SubscribeInput) -> Subscription:
        """A live subscription (armed for wake-ups); iterate ``deliveries()`` for messages: the
        agent's own, or those of the subscription to subjects it names (competing consumers)."""
        if self.ledger.closing:
            raise StorageUnavailable("the broker is shutting down")
        agent = await self.registry.revive(inp.agent_id)
        await self._recover()
        caps = marks.subscription_capabilities(agent.capabilities, agent.agent_type)
        source = deadline = None
        if inp.subscription is not None:
            info = await self.storage.get_subscription(inp.subscription, figures=False)
            source = info.subscription_id
            deadline = None if inp.own_ack_deadline else info.spec.ack_deadline_us
        sub = Subscription(self.ledger, inp, caps, source, deadline)
        self.wakeups.watch(sub.keys, sub.wake)
        self.ledger.open(sub)
        self.registry.stream_opened(agent.agent_id, "subscribe")  # an open stream is a sign of life
        return sub

    def _stream_closed(self, sub: Subscription) -> None:
        self.registry.stream_closed(sub.agent_id, "subscribe", sub.delivered)
        self.wakeups.unwatch(sub.keys, sub.wake)

    def _check_open(self) -> None:
        if self.ledger.closing:
            raise StorageUnavailable("the broker is shutting down; nothing was stored, send again")

    async def ack(self, agent_id: str, ids: list[str]) -> int:
        """An ack answered OK sticks. During shutdown the deliveries stay held until ``close()``
        (so acks in the grace period count); once they are handed back, an ack that may have come
        too late is refused (UNAVAILABLE: ack again, or expect the message again)."""
        if self.ledger.released:
            raise StorageUnavailable("the broker is shutting down; the message will be delivered again")
        self._last_call = asyncio.get_running_loop().time()
        out = await self.storage.ack_messages(agent_id, ids, self.clock.now_us())
        done = out.ids
        self.stats.acknowledged += len(done)
        self.ledger.forget(done)
        self._woken(out.wake, out.scheduled)  # per-key ordering: the next of a key
        if self.ledger.released and len(done) < len(ids):
            raise StorageUnavailable("the broker is shutting down; the message will be delivered again")
        return len(done)

    async def nack(self, inp: NackInput) -> tuple[int, int]:
        out = await self.storage.nack_messages(
            inp.agent_id, inp.message_ids, self.clock.now_us(), inp.delay_us, inp.reject, inp.reason
        )
        self._changed(out, "rejected" if inp.reject else "attempts_exhausted")
        return out.requeued, out.dead

    def _changed(self, out: MessageChanges, dead_reason: str = "attempts_exhausted") -> None:
        if out.dead:
            self.stats.dead_lettered[dead_reason] += out.dead
            log.info("messages dead-lettered", extra={"count": out.dead, "reason": dead_reason})
        self.ledger.forget(out.ids)
        self._woken(out.wake, out.scheduled)

    def _agent_gone(self, gone: AgentGone) -> None:
        """Called after the commit that released the agent's deliveries: end its streams."""
        agent = gone.agent
        if agent.status == AgentStatus.DEREGISTERED:
            why = f"agent {agent.agent_id!r} deregistered"
        else:
            why = f"agent {agent.agent_id!r} went offline ({gone.reason}); heartbeat, then subscribe again"
        self.ledger.agent_gone(agent.agent_id, FailedPrecondition(why))
        caps = marks.subscription_capabilities(agent.capabilities, agent.agent_type)
        self.wakeups.notify_all(subscriber_keys(agent.agent_id, caps))
        self.wakeups.notify_all(subscription_key(s) for s in gone.released_subscriptions)

    # -- reading and repair ----------------------------------------------------------------

    async def get(self, message_id: str) -> Message:
        return await self.storage.get_message(message_id)

    async def conversations(
        self, participant: str | None, after: str | None, limit: int
    ) -> tuple[builtins.list[Conversation], str | None]:
        return await self.storage.list_conversations(participant, after, limit)

    async def list(self, flt: MessageFilter) -> tuple[list[Message], int | None]:
        return await self.storage.list_messages(flt)

    async def purge(self, status: MessageStatus, created_before: int | None, limit: int) -> int:
        """An operator's clean-up: copies in a final status (dead letters by default), oldest first."""
        err = rules.purge_refusal(status)
        if err is not None:
            raise err
        n = await self.storage.purge_messages(
            status, self.clock.now_us() if created_before is None else created_before, limit
        )
        self.stats.purged += n
        log.info("messages purged", extra={"status": status.value, "count": n})
        return n

    async def requeue(self, ids: builtins.list[str]) -> int:
        out = await self.storage.requeue_messages(ids, self.clock.now_us())
        self._changed(out)
        return out.requeued

    # -- housekeeping ----------------------------------------------------------------------

    async def _recover(self) -> None:
        """Once per process: deliveries left by streams of a previous process go back to pending."""
        if self._recovered:
            return
        async with self._recover_lock:
            if self._recovered:
                return
            if self.storage.shared:  # they may be another live broker's: their ack deadline frees them
                self._recovered = True
                return
            out = await self.storage.release_stale_deliveries(
                self.started_at, self.clock.now_us(), "broker restarted before the ack"
            )
            self._recovered = True
            if out.ids:
                log.info("released %d deliveries left by the previous run", len(out.ids))
            self._changed(out)

    async def sweep(self) -> None:
        """Ack deadlines, expiry, retention, and wake-ups for scheduled messages now due."""
        await self._recover()
        now = self.clock.now_us()
        out = await self.storage.sweep_messages(
            now, now - s_to_us(self.settings.message_retention_s), SWEEP_LIMIT
        )
        self._changed(out.lapsed)
        self.ledger.forget(out.expired)
        self.stats.expired += len(out.expired)
        self.stats.purged += out.purged
        if out.lapsed.ids or out.expired or out.purged:
            log.debug(
                "mailbox sweep",
                extra={"lapsed": len(out.lapsed.ids), "expired": len(out.expired), "purged": out.purged},
            )
        await self._sweep_subjects(now)
        due = await self.storage.due_scheduled(self._due_scanned, now)
        self._due_scanned = now
        self._woken(due, [])

    async def _sweep_subjects(self, now: int) -> None:
        """The subscriptions' deliveries, as ``sweep`` does for message copies; subject messages
        past the topic's retention go, and dead letters are published to their subjects."""
        out = await self.storage.sweep_subscriptions(
            now, now - s_to_us(self.settings.subject_retention_s), SWEEP_LIMIT
        )
        self._changed(out.lapsed)
        self.ledger.forget(out.expired)
        self.stats.expired += len(out.expired)
        self.stats.purged += out.purged
        await self.topics.forward_dead_letters()

    def shutdown(self) -> None:
        """Refuse new sends and streams, and end every stream (UNAVAILABLE: subscribe again
        later). Their deliveries stay held until ``close()``, so that an ack sent meanwhile (in the
        server's grace period) still counts; then they are released with the attempt given back:
        the broker, not the agent, failed (see ledger.py)."""
        self.ledger.shutdown()

    async def drain(self, timeout: float, quiet: float = CALLS_QUIET_S) -> None:
        """Wait (bounded by ``timeout``) until the Send calls already accepted have committed and
        been answered, and no Send or Ack has been taken in for ``quiet`` seconds (Sends are refused
        UNAVAILABLE meanwhile; Acks still count, their deliveries are held). Then the server may
        stop: a call that reaches a stopping server before its handler runs is answered CANCELLED
        by gRPC itself, which a sender or a subscriber acking must not see."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            left = deadline - loop.time()
            if self._sends.jobs:
                await asyncio.wait(list(self._sends.jobs), timeout=left)
            elif self._sends.pending:
                await asyncio.sleep(0)
            elif (idle := loop.time() - self._last_call) < quiet:
                await asyncio.sleep(min(quiet - idle, left))
            else:
                return

    async def close(self, timeout: float = 5.0) -> None:
        """After the server stopped: release every delivery still held, and wait (bounded) until
        those releases committed, before storage closes."""
        await self.ledger.close(timeout)
        await self._timer.close()
