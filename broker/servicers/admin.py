"""Admin servicer: protobuf <-> token management (``security/admin.py``)."""

from __future__ import annotations

import grpc

from ..models.common import check_id
from ..pb import admin_pb2 as pb
from ..pb import admin_pb2_grpc as pb_grpc
from ..security.admin import TokenAdmin
from ..security.identity import Role
from ..storage.base import TokenRecord
from .convert import dur_s, enum_value, ts
from .errors import rpc

ROLE_TO_PB = {
    Role.AGENT: pb.TOKEN_ROLE_AGENT,
    Role.ORCHESTRATOR: pb.TOKEN_ROLE_ORCHESTRATOR,
    Role.ADMIN: pb.TOKEN_ROLE_ADMIN,
    Role.VIEWER: pb.TOKEN_ROLE_VIEWER,
}
PB_TO_ROLE = {v: k for k, v in ROLE_TO_PB.items()} | {pb.TOKEN_ROLE_UNSPECIFIED: Role.AGENT}


def token_out(rec: TokenRecord) -> pb.Token:
    return pb.Token(
        token_id=rec.token_id,
        subject=rec.subject,
        role=ROLE_TO_PB[Role(rec.role)],
        created_at=ts(rec.created_at),
        expires_at=ts(rec.expires_at),
        revoked_at=ts(rec.revoked_at),
        note=rec.note,
    )


class AdminServicer(pb_grpc.AdminServicer):
    def __init__(self, admin: TokenAdmin) -> None:
        self.admin = admin

    @rpc
    async def CreateToken(
        self, request: pb.CreateTokenRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateTokenResponse:
        role = PB_TO_ROLE[enum_value(pb.TokenRole, request.role, "role")]
        rec, token = await self.admin.create(request.subject, role, dur_s(request, "ttl"), request.note)
        return pb.CreateTokenResponse(info=token_out(rec), token=token)

    @rpc
    async def ListTokens(
        self, request: pb.ListTokensRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListTokensResponse:
        return pb.ListTokensResponse(tokens=[token_out(r) for r in await self.admin.list()])

    @rpc
    async def RevokeToken(
        self, request: pb.RevokeTokenRequest, context: grpc.aio.ServicerContext
    ) -> pb.RevokeTokenResponse:
        rec = await self.admin.revoke(check_id(request.token_id, "token_id"))
        return pb.RevokeTokenResponse(revoked_at=ts(rec.revoked_at))
