"""The security interceptor: authentication, the authorization table, quotas and the audit log,
applied to every call before its servicer runs.

It wraps each method's handler once (as ``MalformedRequests`` does, which stays outermost): the
wrapped behaviour finds the caller (the ``authorization: Bearer`` token, else a verified client
certificate), checks ``policy.POLICY``, charges the caller's quotas, and sets
``identity.CALLER`` for the service layer; a stream is also ended when its credentials are
withdrawn (``streams.py``). Health checks and reflection are not wrapped.
Authentication failures and denials are logged with subject, RPC and peer (never the token),
at most one line per kind every ten seconds.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any, Protocol

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from ..errors import ResourceExhausted, Unauthenticated
from ..interceptors import WrappingInterceptor
from ..logs import Throttled
from .identity import CALLER, CHARGE, Identity, Role, bearer
from .policy import OPEN_PREFIXES, POLICY, REFLECTION_PREFIX, Denied, Rule, check
from .quotas import Bucket, Quotas
from .streams import STREAM, Guard, OpenStreams

log = logging.getLogger("broker.audit")

_SENDS = ("/a2a.broker.v1.Messaging/Send", "/a2a.broker.v1.Messaging/SendBatch")


class Authenticator(Protocol):
    def cached(self, token: str) -> Identity | None:
        """The identity when known without I/O (None: ``authenticate`` must check)."""

    def seen(self, token: str) -> bool:
        """Whether the token was valid when last checked."""

    async def authenticate(self, token: str) -> Identity: ...


# Look-ups of tokens the cache does not know (a storage read each) that a peer host may spend in a
# burst, and per second after it, on tokens that turn out not to be valid (a valid one gives its
# unit back): past them its unknown tokens are refused unread.
LOOKUP_BURST = 50.0
LOOKUPS_PER_S = 10.0


class _TooManyLookUps(Exception):
    def __init__(self, wait: float) -> None:
        self.wait = wait


def certificate_identity(context: grpc.aio.ServicerContext) -> Identity | None:
    """The identity a verified client certificate names: its subject CN is the agent id, and an
    OU of ``orchestrator`` or ``admin`` raises the role (agent otherwise)."""
    auth = context.auth_context()
    cn = auth.get("x509_common_name")
    if not cn:
        return None
    role = Role.AGENT
    for part in b",".join(auth.get("x509_subject", [])).decode(errors="replace").split(","):
        key, _, value = part.strip().partition("=")
        if key == "OU" and value in (Role.ORCHESTRATOR, Role.ADMIN):
            role = Role(value)
    return Identity(cn[0].decode(errors="replace"), role, "mtls")


class Security(WrappingInterceptor):
    def __init__(
        self,
        authenticator: Authenticator | None,
        mtls: bool,
        quotas: Quotas | None,
    ) -> None:
        super().__init__()
        self.authenticator = authenticator
        self.mtls = mtls
        self.quotas = quotas
        self.streams = OpenStreams(authenticator)
        # Look-up budgets per peer host (see ``_look_up``): a flood of made-up tokens costs no
        # storage reads past the burst.
        self._lookups: dict[str, Bucket] = {}
        self._unauthenticated = Throttled(log, 10.0)
        self._denied = Throttled(log, 10.0)
        self._exhausted = Throttled(log, 10.0)

    def wrap(self, method: str, handler: Any) -> Any:
        if method.startswith(OPEN_PREFIXES) or method.startswith(REFLECTION_PREFIX):
            return handler
        return self._wrap(method, POLICY.get(method), handler)

    async def close(self) -> None:
        await self.streams.close()
        if self.quotas is not None:
            await self.quotas.close()

    # -- the checks ----------------------------------------------------------------------------

    async def _identify(self, method: str, context: grpc.aio.ServicerContext) -> Identity:
        token = None
        for key, value in context.invocation_metadata() or ():
            if key == "authorization":
                token = value
                break
        try:
            if token is not None and self.authenticator is not None:
                secret = bearer(token)
                if secret is None:
                    raise Unauthenticated("authorization: must read 'Bearer <token>'")
                return self.authenticator.cached(secret) or await self._look_up(secret, context)
            who = certificate_identity(context) if self.mtls else None
            if who is not None:
                return who
            raise Unauthenticated("authorization: missing; send the metadata 'authorization: Bearer <token>'")
        except _TooManyLookUps as exc:
            message = f"authorization: too many unknown tokens from this address; retry in {exc.wait:.3f}s"
            self._unauthenticated.log(
                "refused unread: call to %s from %s: %s", method, context.peer(), message
            )
            await context.abort(*_retry_status(message, exc.wait))
            raise AssertionError("unreachable") from None
        except Unauthenticated as exc:
            self._unauthenticated.log(
                "unauthenticated call to %s from %s: %s", method, context.peer(), exc.message
            )
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, exc.message)
            raise AssertionError("unreachable") from None

    async def _look_up(self, secret: str, context: grpc.aio.ServicerContext) -> Identity:
        """A token the cache cannot tell about, checked (a storage read, or a signature). Each
        look-up of a token not seen valid before takes one unit of its peer host's budget, given
        back when the token is valid: a host sending made-up tokens is refused unread
        (RESOURCE_EXHAUSTED, with the delay after which it may try again) once it has spent its
        burst, however fast it sends them."""
        assert self.authenticator is not None
        if self.authenticator.seen(secret):  # valid when last checked: no stranger's token
            return await self.authenticator.authenticate(secret)
        host = _host(context.peer())
        now = time.monotonic()
        bucket = self._lookups.get(host)
        if bucket is None:
            if len(self._lookups) >= 10_000:
                self._lookups.clear()
            bucket = self._lookups[host] = Bucket(LOOKUPS_PER_S, LOOKUP_BURST, LOOKUP_BURST)
        wait = bucket.take(1, now)
        if wait:
            raise _TooManyLookUps(wait)
        who = await self.authenticator.authenticate(secret)  # Unauthenticated: the unit is spent
        bucket.level = min(bucket.burst, bucket.level + 1)
        return who

    async def _admit(
        self, method: str, rule: Rule | None, request: Any, context: grpc.aio.ServicerContext
    ) -> tuple[Identity, list[tuple[str, str]]]:
        """Who calls, whether it may, and its quotas charged: all from memory (a token the cache
        does not know aside), so that a refused call costs no storage read and no write. Also
        the direct sends it was admitted for (to settle once answered, see ``Quotas``)."""
        who = await self._identify(method, context)
        try:
            if rule is None:
                raise Denied(f"{method} is not in the authorization policy")
            check(method, rule, who, request)
        except Denied as exc:
            self._denied.log(
                "permission denied: %s (%s) called %s from %s: %s",
                who.subject,
                who.role.value,
                method,
                context.peer(),
                exc,
            )
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, str(exc))
        over, sends = self._over(who, method, request)
        if over is not None:
            await context.abort(*_retry_status(self._exhausted_message(who, method, *over), over[1]))
        CALLER.set(who)  # each call runs in its own task: nothing leaks to another call
        return who, sends

    def _over(
        self, who: Identity, method: str, request: Any
    ) -> tuple[tuple[str, float] | None, list[tuple[str, str]]]:
        """Charge a call (or one entry of a request stream: ``request`` as its unary twin
        ``method``): None within quota, else what is exhausted and the retry delay; and the
        direct sends admitted (recipient, sender), in flight until ``settle_pending``."""
        quotas = self.quotas
        if quotas is None or who.role is Role.ADMIN:
            return None, []
        wait = quotas.charge(who.subject, request.ByteSize() if request is not None else 0)
        if wait:
            return ("calls or bytes per second", wait), []
        if method not in _SENDS or not quotas.max_pending:
            return None, []
        sends = [
            (req.target.agent_id, req.sender_id)
            for req in (request.messages if method.endswith("Batch") else (request,))
            if req.target.WhichOneof("kind") == "agent_id"
        ]
        full = quotas.admit_pending(who.subject, sends) if sends else None
        if full is not None:
            return (
                f"pending messages for {full!r} ({quotas.max_pending}, shared among its senders)",
                1.0,
            ), []
        return None, sends

    def _charge_entry(self, who: Identity, method: str, request: Any) -> Callable[[], None]:
        over, sends = self._over(who, method, request)
        if over is not None:
            raise ResourceExhausted(self._exhausted_message(who, method, *over))
        if not sends:
            return _nothing
        return functools.partial(self.quotas.settle_pending, sends)  # type: ignore[union-attr]

    def _exhausted_message(self, who: Identity, method: str, what: str, wait: float) -> str:
        assert self.quotas is not None
        self._exhausted.log(
            "quota exceeded: %s called %s beyond its %s (%d refusals so far)",
            who.subject,
            method,
            what,
            self.quotas.refused[who.subject],
        )
        if what.startswith("pending"):
            return f"quota: the recipient holds too many {what}; retry in {wait:.3f}s"
        return f"quota: {who.subject!r} is over its {what}; retry in {wait:.3f}s"

    async def _streamed(
        self, who: Identity, method: str, context: grpc.aio.ServicerContext, items: AsyncGenerator[Any, None]
    ) -> AsyncIterator[Any]:
        """A response stream: counted against the caller's open-streams quota while it lasts,
        and ended (UNAUTHENTICATED) when its credentials are revoked or expire (``streams.py``)."""
        quotas = self.quotas
        counted = quotas is not None and who.role is not Role.ADMIN
        if counted and not quotas.open_stream(who.subject):  # type: ignore[union-attr]
            what = f"{quotas.max_streams} open streams"  # type: ignore[union-attr]
            await context.abort(*_retry_status(self._exhausted_message(who, method, what, 1.0), 1.0))
        guard = Guard()
        STREAM.set(guard)
        self.streams.opened(who, guard)
        try:
            while guard.reason is None:
                guard.inside = True
                try:
                    item = await anext(items)
                except StopAsyncIteration:
                    return
                except asyncio.CancelledError:
                    if guard.reason is None:
                        raise
                    guard.task.uncancel()  # our own cancellation: the stream ends, as below
                finally:
                    guard.inside = False
                if guard.reason is None:
                    yield item
            await items.aclose()  # what it holds is released (already, if it was cancelled)
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, guard.reason)
        finally:
            self.streams.closed(who, guard)
            if counted:
                quotas.close_stream(who.subject)  # type: ignore[union-attr]

    # -- wrapping --------------------------------------------------------------------------------

    def _wrap(self, method: str, rule: Rule | None, handler: Any) -> Any:
        admit = self._admit
        if handler.unary_unary is not None and inspect.iscoroutinefunction(handler.unary_unary):
            inner = handler.unary_unary

            async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                _, sends = await admit(method, rule, request, context)
                if not sends:
                    return await inner(request, context)
                try:
                    return await inner(request, context)
                finally:
                    self.quotas.settle_pending(sends)  # type: ignore[union-attr]

            return handler._replace(unary_unary=unary)
        if handler.unary_stream is not None and inspect.isasyncgenfunction(handler.unary_stream):
            inner_stream = handler.unary_stream

            async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                who, _ = await admit(method, rule, request, context)
                async for item in self._streamed(who, method, context, inner_stream(request, context)):
                    yield item

            return handler._replace(unary_stream=stream)
        if handler.stream_stream is not None and inspect.isasyncgenfunction(handler.stream_stream):
            inner_bidi = handler.stream_stream

            # A request stream: who calls and in which role is checked once, at the start (and
            # charged as one call); what each entry names is checked by the service layer
            # (``identity.may_act_as``), which charges each entry as its unary twin
            # (``identity.charge``).
            async def bidi(requests: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                who, _ = await admit(method, rule, None, context)
                CHARGE.set(functools.partial(self._charge_entry, who))
                async for item in self._streamed(who, method, context, inner_bidi(requests, context)):
                    yield item

            return handler._replace(stream_stream=bidi)

        async def refuse(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, f"{method} is not served to clients")

        return grpc.unary_unary_rpc_method_handler(refuse)


def _nothing() -> None:
    pass


def _host(peer: str) -> str:
    """The host of a gRPC peer string (``ipv4:1.2.3.4:5678``, ``ipv6:[::1]:5678``, ``unix:...``)."""
    return peer.rsplit(":", 1)[0] if peer.startswith(("ipv4:", "ipv6:")) else peer


def _retry_status(message: str, wait: float) -> tuple[grpc.StatusCode, str, tuple[tuple[str, Any], ...]]:
    delay = duration_pb2.Duration()
    delay.FromNanoseconds(max(1, int(wait * 1e9)))
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
    status = rpc_status.to_status(
        status_pb2.Status(code=code_pb2.RESOURCE_EXHAUSTED, message=message, details=[detail])
    )
    return (
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        message,
        (*status.trailing_metadata, ("retry-after-ms", str(max(1, round(wait * 1000))))),
    )
