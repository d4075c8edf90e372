"""Helpers for the security tests: issuing tokens on a broker's database, and stubs that send
them as ``authorization: Bearer`` metadata."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
from a2a_broker_client.security import bearer_interceptors

from broker.pb import agents_pb2 as apb
from broker.pb import agents_pb2_grpc, messaging_pb2_grpc, tasks_pb2_grpc
from broker.security.tokens import new_secret, touch_marker
from broker.storage.base import TokenRecord
from broker.storage.token_file import open_tokens
from tests.conftest import Stubs


def issue(db: str | Path, subject: str, role: str = "agent", expires_in_s: float | None = None) -> str:
    """Create a token on the database (a SQLite file or a PostgreSQL URL), as ``a2a-broker tokens
    create`` does; return it."""
    now = time.time_ns() // 1000
    expires = now + int(expires_in_s * 1_000_000) if expires_in_s is not None else None
    token_id, token, secret_hash = new_secret()
    with open_tokens(str(db)) as tokens:
        tokens.insert(TokenRecord(token_id, secret_hash, subject, role, now, expires))
    return token


def revoke(db: str | Path, token: str) -> None:
    """Revoke a token as ``a2a-broker tokens revoke`` does (on a SQLite file, touching the marker a
    running broker watches; on PostgreSQL, the revocation's transaction tells the brokers)."""
    with open_tokens(str(db)) as tokens:
        assert tokens.revoke(token.split(".")[1], time.time_ns() // 1000)
    if tokens.path is not None:
        touch_marker(tokens.path)


def stubs_with(channel: grpc.aio.Channel) -> Stubs:
    return Stubs(
        channel,
        agents_pb2_grpc.AgentRegistryStub(channel),
        messaging_pb2_grpc.MessagingStub(channel),
        tasks_pb2_grpc.TaskQueueStub(channel),
    )


def authed_stubs(
    address: str, token: str | None, credentials: grpc.ChannelCredentials | None = None
) -> Stubs:
    interceptors = bearer_interceptors(token) if token else None
    if credentials is None:
        channel = grpc.aio.insecure_channel(address, interceptors=interceptors)
    else:
        channel = grpc.aio.secure_channel(address, credentials, interceptors=interceptors)
    return stubs_with(channel)


async def register_outcome(
    address: str,
    token: str | None,
    agent_id: str = "a1",
    credentials: grpc.ChannelCredentials | None = None,
) -> str:
    """Register ``agent_id`` on a fresh channel: "OK", or the refusal's status code name."""
    stubs = authed_stubs(address, token, credentials)
    try:
        await stubs.agents.Register(apb.RegisterRequest(agent_id=agent_id, max_concurrent_tasks=1), timeout=5)
        return "OK"
    except grpc.aio.AioRpcError as exc:
        return exc.code().name
    finally:
        await stubs.channel.close()
