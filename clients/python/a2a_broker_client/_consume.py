"""A subscription whose acks and nacks travel on the same stream (the broker's ``Consume``), with
a fallback to ``Subscribe`` and unary ``Ack``/``Nack`` against a broker that predates it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from . import _convert as c
from . import models as m
from ._duplex import Duplex
from ._stream import Stream
from .pb import messaging_pb2


class Consumption(Duplex[m.Message]):
    """The agent's messages, backlog first then live, one :class:`Message` at a time; ack them
    with :meth:`ack` (answered once committed) or hand them back with :meth:`nack`, on the same
    stream. Closing it releases the unacked messages for redelivery."""

    method = "messaging/Consume"

    def __init__(
        self,
        open_call: Callable[[], Any],
        subscribe: messaging_pb2.SubscribeRequest,
        fallback: Callable[[], Stream[m.Message]],
        unary_ack: Callable[[list[str]], Any],
        unary_nack: Callable[..., Any],
    ) -> None:
        super().__init__(open_call, messaging_pb2.ConsumeRequest(subscribe=subscribe), fallback)
        self._unary_ack = unary_ack
        self._unary_nack = unary_nack

    def _items(self, resp: Any) -> list[m.Message]:
        return [c.message(x) for x in resp.messages]

    def _confirm(self, resp: Any) -> Any | None:
        return resp.confirm if resp.HasField("confirm") else None

    def _request(self, sequence: int, **fields: Any) -> Any:
        return messaging_pb2.ConsumeRequest(sequence=sequence, **fields)

    async def ack(self, message_ids: Sequence[str] | str) -> int:
        """Mark delivered messages processed; returns how many changed, once committed."""
        ids = [message_ids] if isinstance(message_ids, str) else list(message_ids)
        if not self.in_band:
            return int(await self._unary_ack(ids))
        return int((await self._settle(ack_ids=ids)).acked)

    async def ack_later(self, message_ids: Sequence[str] | str) -> bool:
        """Ack without waiting for a confirmation: the broker sends none unless it refuses the
        request (logged), and commits the acks before it counts them done (before it delivers
        more in their place); an ack lost with the stream still means a redelivery. A later
        :meth:`ack`'s confirmation says this one is committed too. Returns False when the stream
        does not take requests (an older broker: call :meth:`ack`)."""
        if not self.in_band:
            return False
        ids = [message_ids] if isinstance(message_ids, str) else list(message_ids)
        await self._send(ack_ids=ids, no_confirm=True)
        return True

    async def nack(
        self,
        message_ids: Sequence[str] | str,
        *,
        delay: m.Seconds | None = None,
        reject: bool = False,
        reason: str = "",
    ) -> m.NackResult:
        """Hand messages back for redelivery (after ``delay``), or dead-letter them with ``reject``."""
        ids = [message_ids] if isinstance(message_ids, str) else list(message_ids)
        if not self.in_band:
            result: m.NackResult = await self._unary_nack(ids, delay=delay, reject=reject, reason=reason)
            return result
        fields: dict[str, Any] = {"nack_ids": ids, "reject": reject, "reason": reason}
        if delay is not None:
            fields["nack_delay"] = c.duration(delay)
        confirm = await self._settle(**fields)
        return m.NackResult(confirm.requeued, confirm.dead_lettered)
