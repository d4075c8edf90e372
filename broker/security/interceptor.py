"""The security interceptor: authentication, the authorization table, quotas and the audit log,
applied to every call before its servicer runs.

It wraps each method's handler once (as ``MalformedRequests`` does, which stays outermost): the
wrapped behaviour finds the caller (the ``authorization: Bearer`` token, else a verified client
certificate), checks ``policy.POLICY``, charges the caller's quotas, and sets
``identity.CALLER`` for the service layer. Health checks and reflection are not wrapped.
Authentication failures and denials are logged with subject, RPC and peer (never the token),
at most one line per kind every ten seconds.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator
from typing import Any, Protocol

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from ..errors import Unauthenticated
from ..interceptors import WrappingInterceptor
from ..logs import Throttled
from .identity import CALLER, Identity, Role, bearer
from .policy import OPEN_PREFIXES, POLICY, REFLECTION_PREFIX, Denied, Rule, check
from .quotas import Quotas

log = logging.getLogger("broker.audit")

_SENDS = ("/a2a.broker.v1.Messaging/Send", "/a2a.broker.v1.Messaging/SendBatch")


class Authenticator(Protocol):
    async def authenticate(self, token: str) -> Identity: ...


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
        self._unauthenticated = Throttled(log, 10.0)
        self._denied = Throttled(log, 10.0)
        self._exhausted = Throttled(log, 10.0)

    def wrap(self, method: str, handler: Any) -> Any:
        if method.startswith(OPEN_PREFIXES) or method.startswith(REFLECTION_PREFIX):
            return handler
        return self._wrap(method, POLICY.get(method), handler)

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
                return await self.authenticator.authenticate(secret)
            who = certificate_identity(context) if self.mtls else None
            if who is not None:
                return who
            raise Unauthenticated("authorization: missing; send the metadata 'authorization: Bearer <token>'")
        except Unauthenticated as exc:
            self._unauthenticated.log(
                "unauthenticated call to %s from %s: %s", method, context.peer(), exc.message
            )
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, exc.message)
            raise AssertionError("unreachable") from None

    async def _admit(
        self, method: str, rule: Rule | None, request: Any, context: grpc.aio.ServicerContext
    ) -> Identity:
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
        if self.quotas is not None and who.role is not Role.ADMIN and request is not None:
            wait = self.quotas.charge(who.subject, request.ByteSize())
            if wait:
                await self._exhausted_abort(who, method, context, "calls or bytes per second", wait)
            if method in _SENDS and self.quotas.max_pending:
                for req in request.messages if method.endswith("Batch") else (request,):
                    if req.target.WhichOneof("kind") == "agent_id":
                        if not await self.quotas.admit_pending(req.target.agent_id):
                            what = f"pending messages for {req.target.agent_id!r} ({self.quotas.max_pending})"
                            await self._exhausted_abort(who, method, context, what, 1.0)
        CALLER.set(who)  # each call runs in its own task: nothing leaks to another call
        return who

    async def _counted(
        self, who: Identity, method: str, context: grpc.aio.ServicerContext, items: AsyncIterator[Any]
    ) -> AsyncIterator[Any]:
        """A response stream counted against the caller's open-streams quota while it lasts."""
        quotas = self.quotas
        counted = quotas is not None and who.role is not Role.ADMIN
        if counted and not quotas.open_stream(who.subject):  # type: ignore[union-attr]
            await self._exhausted_abort(who, method, context, f"{quotas.max_streams} open streams", 1.0)  # type: ignore[union-attr]
        try:
            async for item in items:
                yield item
        finally:
            if counted:
                quotas.close_stream(who.subject)  # type: ignore[union-attr]

    async def _exhausted_abort(
        self, who: Identity, method: str, context: grpc.aio.ServicerContext, what: str, wait: float
    ) -> None:
        assert self.quotas is not None
        self._exhausted.log(
            "quota exceeded: %s called %s beyond its %s (%d refusals so far)",
            who.subject,
            method,
            what,
            self.quotas.refused[who.subject],
        )
        message = f"quota: {who.subject!r} is over its {what}; retry in {wait:.3f}s"
        if what.startswith("pending"):
            message = f"quota: the recipient holds too many {what}; retry in {wait:.3f}s"
        await context.abort(*_retry_status(message, wait))

    # -- wrapping --------------------------------------------------------------------------------

    def _wrap(self, method: str, rule: Rule | None, handler: Any) -> Any:
        admit = self._admit
        if handler.unary_unary is not None and inspect.iscoroutinefunction(handler.unary_unary):
            inner = handler.unary_unary

            async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                await admit(method, rule, request, context)
                return await inner(request, context)

            return handler._replace(unary_unary=unary)
        if handler.unary_stream is not None and inspect.isasyncgenfunction(handler.unary_stream):
            inner_stream = handler.unary_stream

            async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                who = await admit(method, rule, request, context)
                async for item in self._counted(who, method, context, inner_stream(request, context)):
                    yield item

            return handler._replace(unary_stream=stream)
        if handler.stream_stream is not None and inspect.isasyncgenfunction(handler.stream_stream):
            inner_bidi = handler.stream_stream

            # A request stream: who calls and in which role is checked once, at the start; what
            # each entry names is checked by the service layer (``identity.may_act_as``).
            async def bidi(requests: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                who = await admit(method, rule, None, context)
                async for item in self._counted(who, method, context, inner_bidi(requests, context)):
                    yield item

            return handler._replace(stream_stream=bidi)

        async def refuse(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, f"{method} is not served to clients")

        return grpc.unary_unary_rpc_method_handler(refuse)


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
