"""``a2a-broker tokens --address``: the token commands through a running broker's Admin service."""

from __future__ import annotations

import argparse
import os
from typing import Any, Literal

import grpc

from ..pb import admin_pb2 as pb
from ..pb import admin_pb2_grpc
from ..security.identity import Role
from ..servicers.admin import PB_TO_ROLE, ROLE_TO_PB
from ..servicers.convert import dur
from ..storage.base import TokenRecord

TOKEN_ENV = "A2A_BROKER_TOKEN"
CA_ENV = "A2A_BROKER_CA"
CLIENT_CERT_ENV = "A2A_BROKER_CLIENT_CERT"
CLIENT_KEY_ENV = "A2A_BROKER_CLIENT_KEY"
TIMEOUT_S = 15.0


class RemoteError(Exception):
    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _read(path: str | None) -> bytes | None:
    if not path:
        return None
    with open(path, "rb") as f:
        return f.read()


def connect(address: str, ns: argparse.Namespace) -> tuple[grpc.aio.Channel, Any, Any]:
    """A channel to the broker (TLS when a CA or a client certificate is given), the Admin stub,
    and the call metadata carrying the token."""
    ca = getattr(ns, "ca", None) or os.environ.get(CA_ENV)
    cert = getattr(ns, "client_cert", None) or os.environ.get(CLIENT_CERT_ENV)
    key = getattr(ns, "client_key", None) or os.environ.get(CLIENT_KEY_ENV)
    if bool(cert) != bool(key):
        raise ValueError("--client-cert and --client-key go together: give both or neither")
    token = getattr(ns, "token", None) or os.environ.get(TOKEN_ENV)
    if ca or cert:
        creds = grpc.ssl_channel_credentials(_read(ca), _read(key), _read(cert))
        channel = grpc.aio.secure_channel(address, creds)
    else:
        channel = grpc.aio.insecure_channel(address)
    md = (("authorization", f"Bearer {token}"),) if token else None
    return channel, admin_pb2_grpc.AdminStub(channel), md


def _record(t: pb.Token) -> TokenRecord:
    def us(field: Literal["created_at", "expires_at", "revoked_at"]) -> int | None:
        return getattr(t, field).ToMicroseconds() if t.HasField(field) else None

    return TokenRecord(
        t.token_id, "", t.subject, PB_TO_ROLE[t.role].value, us("created_at") or 0,
        us("expires_at"), us("revoked_at"), t.note,
    )  # fmt: skip


async def _ask(call: Any) -> Any:
    try:
        return await call
    except grpc.aio.AioRpcError as exc:
        code = exc.code()
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            raise RemoteError(
                f"cannot reach the broker ({code.name}: {exc.details()}). Is it running?", 3
            ) from None
        hint = (
            f" (an admin token: --token or ${TOKEN_ENV})"
            if code.name in ("UNAUTHENTICATED", "PERMISSION_DENIED")
            else ""
        )
        raise RemoteError(f"the broker refused: {code.name}: {exc.details()}{hint}", 4) from None


async def create(
    stub: Any, md: Any, subject: str, role: Role, ttl_s: float | None, note: str
) -> tuple[TokenRecord, str]:
    req = pb.CreateTokenRequest(subject=subject, role=ROLE_TO_PB[role], note=note)
    if ttl_s is not None:
        req.ttl.CopyFrom(dur(ttl_s))
    resp = await _ask(stub.CreateToken(req, metadata=md, timeout=TIMEOUT_S))
    return _record(resp.info), resp.token


async def list_tokens(stub: Any, md: Any) -> list[TokenRecord]:
    resp = await _ask(stub.ListTokens(pb.ListTokensRequest(), metadata=md, timeout=TIMEOUT_S))
    return [_record(t) for t in resp.tokens]


async def revoke(stub: Any, md: Any, token_id: str) -> None:
    await _ask(stub.RevokeToken(pb.RevokeTokenRequest(token_id=token_id), metadata=md, timeout=TIMEOUT_S))
