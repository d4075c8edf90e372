"""Who calls over HTTP (the A2A JSON-RPC and HTTP+JSON bindings): the same checks as the gRPC
interceptor applies to the same operations. The caller is the ``Authorization: Bearer`` token's
identity, else the verified client certificate's (mutual TLS); its role must be one the policy
row of the operation allows; its call and byte quotas are charged. With ``--auth none`` and no
client CA nothing is checked (the caller is None: everything allowed, as on gRPC)."""

from __future__ import annotations

from typing import Any

from ..errors import PermissionDenied, ResourceExhausted, Unauthenticated
from .identity import Identity, Role, bearer
from .interceptor import Authenticator
from .policy import POLICY, Denied, check
from .quotas import Quotas
from .streams import OpenStreams


def certificate_subject(peercert: dict[str, Any] | None) -> Identity | None:
    """The identity a verified client certificate names (``ssl.SSLSocket.getpeercert()`` form):
    its subject CN is the agent id, an OU of ``orchestrator`` or ``admin`` raises the role."""
    if not peercert:
        return None
    fields = [item for rdn in peercert.get("subject", ()) for item in rdn]
    cn = next((v for k, v in fields if k == "commonName"), None)
    if not cn:
        return None
    role = Role.AGENT
    for key, value in fields:
        if key == "organizationalUnitName" and value in (Role.ORCHESTRATOR, Role.ADMIN):
            role = Role(value)
    return Identity(cn, role, "mtls")


class HttpGate:
    def __init__(
        self,
        authenticator: Authenticator | None,
        mtls: bool,
        quotas: Quotas | None,
        streams: OpenStreams | None = None,
    ) -> None:
        self.authenticator = authenticator
        self.mtls = mtls
        self.quotas = quotas
        self.streams = streams  # the gRPC port's: a withdrawn token ends its HTTP requests too

    @property
    def open(self) -> bool:
        return self.authenticator is None and not self.mtls

    async def admit(
        self, method: str, authorization: str | None, peercert: dict[str, Any] | None, nbytes: int
    ) -> Identity | None:
        """The caller of ``method`` (a policy key, e.g. ``/lf.a2a.v1.A2AService/SendMessage``);
        Unauthenticated, PermissionDenied or ResourceExhausted when it may not call it now."""
        if self.open:
            return None
        who: Identity | None = None
        if authorization and self.authenticator is not None:
            token = bearer(authorization)
            if token is None:
                raise Unauthenticated("authorization: must read 'Bearer <token>'")
            who = self.authenticator.cached(token) or await self.authenticator.authenticate(token)
        elif self.mtls:
            who = certificate_subject(peercert)
        if who is None:
            raise Unauthenticated("authorization: missing; send the header 'Authorization: Bearer <token>'")
        rule = POLICY.get(method)
        try:
            if rule is None:
                raise Denied(f"{method} is not in the authorization policy")
            check(method, rule, who, None)
        except Denied as exc:
            raise PermissionDenied(str(exc)) from None
        if self.quotas is not None and who.role is not Role.ADMIN:
            wait = self.quotas.charge(who.subject, nbytes)
            if wait:
                raise ResourceExhausted(
                    f"quota: {who.subject!r} is over its calls or bytes per second; retry in {wait:.3f}s"
                )
        return who
