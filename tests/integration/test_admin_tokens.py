"""#23.1: an admin issues, lists and revokes tokens through the Admin service, on either backend
(the `broker` fixture runs on SQLite, and on PostgreSQL with --backend postgres). A token issued
there works at once; a revoked one is refused at once by the broker that revoked it; bad requests
are refused naming the field and change nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2

from broker.pb import admin_pb2 as pb
from broker.pb import admin_pb2_grpc
from broker.server import Broker

from .security_support import authed_stubs, issue, register_outcome


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"auth": "token", "auth_cache_s": 60.0}  # a revocation must not wait for the cache


@pytest.fixture
async def admin(broker: Broker) -> AsyncIterator[admin_pb2_grpc.AdminStub]:
    stubs = authed_stubs(broker.address, issue(broker.settings.db, "root", "admin"))
    try:
        yield admin_pb2_grpc.AdminStub(stubs.channel)
    finally:
        await stubs.channel.close()


async def test_a_token_issued_over_the_api_works_lists_without_its_secret_and_revokes_at_once(
    broker: Broker, admin: admin_pb2_grpc.AdminStub
) -> None:
    made = await admin.CreateToken(
        pb.CreateTokenRequest(
            subject="worker-1", role=pb.TOKEN_ROLE_AGENT, ttl=duration_pb2.Duration(seconds=3600), note="ci"
        )
    )
    token, info = made.token, made.info
    assert token.startswith(f"a2a.{info.token_id}.")
    assert (info.subject, info.role, info.note) == ("worker-1", pb.TOKEN_ROLE_AGENT, "ci")
    assert info.expires_at.seconds - info.created_at.seconds == 3600
    assert not info.HasField("revoked_at")

    # It works, for its subject only; and this broker has it in its cache from now on.
    assert await register_outcome(broker.address, token, "worker-1") == "OK"
    assert await register_outcome(broker.address, token, "someone-else") == "PERMISSION_DENIED"

    listed = {t.token_id: t for t in (await admin.ListTokens(pb.ListTokensRequest())).tokens}
    assert listed[info.token_id] == info
    assert token.split(".")[2] not in str(listed)  # never the secret

    revoked = await admin.RevokeToken(pb.RevokeTokenRequest(token_id=info.token_id))
    assert revoked.revoked_at.seconds > 0
    # Refused at once (the cache holds it for 60 s: the revocation dropped it).
    assert await register_outcome(broker.address, token, "worker-1") == "UNAUTHENTICATED"
    # Revoking again is fine, and keeps the first time.
    again = await admin.RevokeToken(pb.RevokeTokenRequest(token_id=info.token_id))
    assert again.revoked_at == revoked.revoked_at
    listed = {t.token_id: t for t in (await admin.ListTokens(pb.ListTokensRequest())).tokens}
    assert listed[info.token_id].revoked_at == revoked.revoked_at


async def test_an_admin_token_needs_no_subject_and_takes_its_roles_name(
    admin: admin_pb2_grpc.AdminStub,
) -> None:
    made = await admin.CreateToken(pb.CreateTokenRequest(role=pb.TOKEN_ROLE_VIEWER))
    assert (made.info.subject, made.info.role) == ("viewer", pb.TOKEN_ROLE_VIEWER)
    assert not made.info.HasField("expires_at")


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pb.CreateTokenRequest(role=pb.TOKEN_ROLE_AGENT), "subject"),
        (pb.CreateTokenRequest(role=pb.TOKEN_ROLE_ORCHESTRATOR), "subject"),
        (pb.CreateTokenRequest(subject="a*b", role=pb.TOKEN_ROLE_AGENT), "subject"),
        (pb.CreateTokenRequest(subject="*"), "subject"),
        (pb.CreateTokenRequest(subject="w", ttl=duration_pb2.Duration(seconds=-5)), "ttl"),
        (pb.CreateTokenRequest(subject="w", ttl=duration_pb2.Duration(seconds=0)), "ttl"),
        (pb.CreateTokenRequest(subject="w", role=42), "role"),  # type: ignore[arg-type]
        (pb.CreateTokenRequest(subject="w", note="n" * 513), "note"),
    ],
)
async def test_a_bad_create_is_refused_naming_the_field_and_makes_nothing(
    admin: admin_pb2_grpc.AdminStub, request_: pb.CreateTokenRequest, field: str
) -> None:
    before = (await admin.ListTokens(pb.ListTokensRequest())).tokens
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await admin.CreateToken(request_)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (err.value.details() or "").startswith(f"{field}: "), err.value.details()
    assert (await admin.ListTokens(pb.ListTokensRequest())).tokens == before


async def test_revoking_an_unknown_or_malformed_id_is_refused(admin: admin_pb2_grpc.AdminStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await admin.RevokeToken(pb.RevokeTokenRequest(token_id="0123456789ab"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert "0123456789ab" in (err.value.details() or "")
    for bad, rule in (("", "is required"), ("a b", "may contain only")):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await admin.RevokeToken(pb.RevokeTokenRequest(token_id=bad))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (err.value.details() or "").startswith("token_id: ") and rule in (err.value.details() or "")
