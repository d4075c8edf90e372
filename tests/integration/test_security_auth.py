"""Authentication: broker-issued tokens (hashed at rest, expiry, revocation) and JWTs."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from broker.server import Broker, start_server
from tests.conftest import ROOT, make_settings

from .security_support import issue, register_outcome


@pytest.fixture
async def token_broker(tmp_path: Path) -> AsyncIterator[Broker]:
    b = await start_server(make_settings(tmp_path, auth="token", auth_cache_s=60))
    try:
        yield b
    finally:
        await b.stop(0.2)


async def _register(address: str, token: str | None, agent_id: str = "a1") -> str:
    return await register_outcome(address, token, agent_id)


async def test_missing_malformed_or_unknown_token_is_unauthenticated(token_broker: Broker) -> None:
    db = token_broker.settings.db
    good = issue(db, "a1")
    assert await _register(token_broker.address, None) == "UNAUTHENTICATED"
    assert await _register(token_broker.address, "not-a-token") == "UNAUTHENTICATED"
    forged = good.rsplit(".", 1)[0] + ".AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    assert await _register(token_broker.address, forged) == "UNAUTHENTICATED"
    assert await _register(token_broker.address, good) == "OK"


async def test_token_is_stored_hashed_never_in_clear(token_broker: Broker) -> None:
    token = issue(token_broker.settings.db, "a1", "admin")
    assert await _register(token_broker.address, token) == "OK"
    secret = token.rsplit(".", 1)[1].encode()
    for path in Path(token_broker.settings.db).parent.iterdir():
        assert secret not in path.read_bytes(), path


async def test_expired_token_is_refused_the_moment_it_expires(token_broker: Broker) -> None:
    token = issue(token_broker.settings.db, "a1", expires_in_s=0.5)
    assert await _register(token_broker.address, token) == "OK"  # now cached for auth_cache_s=60
    await asyncio.sleep(0.6)  # past its expiry: no timing hoped for, the token is dead by now
    assert await _register(token_broker.address, token) == "UNAUTHENTICATED"


async def test_revoked_token_is_refused_at_once_though_cached(token_broker: Broker) -> None:
    db = token_broker.settings.db
    token = issue(db, "a1")
    assert await _register(token_broker.address, token) == "OK"  # cached for 60 s
    token_id = token.split(".")[1]
    out = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "broker", "tokens", "--db", db, "revoke", token_id],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert await _register(token_broker.address, token) == "UNAUTHENTICATED"


def test_tokens_cli_creates_lists_and_revokes_without_printing_hashes(tmp_path: Path) -> None:
    db = str(tmp_path / "new" / "broker.db")

    def cli(*args: str) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "broker", "--json", "tokens", "--db", db, *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert out.returncode == 0, out.stderr
        return out.stdout

    created = json.loads(cli("create", "--role", "admin", "--create-db"))
    assert created["subject"] == "admin" and created["token"].startswith("a2a.")
    listed = json.loads(cli("list"))
    assert [t["token_id"] for t in listed] == [created["token_id"]]
    assert created["token"].split(".")[2] not in json.dumps(listed)
    assert "secret_hash" not in listed[0]
    cli("revoke", created["token_id"])
    assert json.loads(cli("list"))[0]["revoked_at"] != "-"
    assert Path(db).stat().st_mode & 0o077 == 0  # created owner-only


async def test_health_stays_open_and_reflection_is_off_with_auth(token_broker: Broker) -> None:
    async with grpc.aio.insecure_channel(token_broker.address) as channel:
        resp = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert resp.status == health_pb2.HealthCheckResponse.SERVING
        call = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
        )
        with pytest.raises(grpc.aio.AioRpcError) as err:
            async for _ in call:
                pass
        assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED


# -- JWT -------------------------------------------------------------------------------------------


def _rsa() -> Any:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem_public(key: Any) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.fixture(scope="module")
def idp_key() -> Any:
    return _rsa()


@pytest.fixture
async def jwt_broker(tmp_path: Path, idp_key: Any) -> AsyncIterator[Broker]:
    key_file = tmp_path / "idp.pem"
    key_file.write_bytes(_pem_public(idp_key))
    settings = make_settings(
        tmp_path,
        auth="jwt",
        jwt_key_file=str(key_file),
        jwt_issuer="https://idp.example",
        jwt_audience="a2a-broker",
        jwt_subject_claim="agent",
        jwt_role_claim="a2a_role",
    )
    b = await start_server(settings)
    try:
        yield b
    finally:
        await b.stop(0.2)


def _jwt(key: Any, **overrides: Any) -> str:
    claims = {
        "iss": "https://idp.example",
        "aud": "a2a-broker",
        "agent": "a1",
        "a2a_role": "agent",
        "exp": int(time.time()) + 300,
    }
    claims.update(overrides)
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, key, algorithm="RS256")


async def test_valid_jwt_names_the_agent_through_the_configured_claims(
    jwt_broker: Broker, idp_key: Any
) -> None:
    assert await _register(jwt_broker.address, _jwt(idp_key)) == "OK"
    assert await _register(jwt_broker.address, _jwt(idp_key), agent_id="a2") == "PERMISSION_DENIED"
    assert await _register(jwt_broker.address, _jwt(idp_key, agent="fleet-*"), agent_id="fleet-9") == "OK"


@pytest.mark.parametrize(
    "bad",
    [
        {"iss": "https://evil.example"},
        {"aud": "someone-else"},
        {"exp": int(time.time()) - 60},
        {"exp": None},
        {"a2a_role": "superuser"},
        {"agent": None},
    ],
    ids=["issuer", "audience", "expired", "no-expiry", "unknown-role", "no-subject"],
)
async def test_jwt_with_wrong_claims_is_unauthenticated(jwt_broker: Broker, idp_key: Any, bad: dict) -> None:
    assert await _register(jwt_broker.address, _jwt(idp_key, **bad)) == "UNAUTHENTICATED"


async def test_jwt_signed_by_another_key_is_unauthenticated(jwt_broker: Broker) -> None:
    assert await _register(jwt_broker.address, _jwt(_rsa())) == "UNAUTHENTICATED"


async def test_jwt_verified_against_a_jwks_file_by_kid(tmp_path: Path, idp_key: Any) -> None:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(idp_key.public_key()))
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**jwk, "kid": "k1", "alg": "RS256", "use": "sig"}]}))
    b = await start_server(make_settings(tmp_path, auth="jwt", jwt_jwks_file=str(jwks)))
    try:
        claims = {"sub": "a1", "exp": int(time.time()) + 60}
        good = jwt.encode(claims, idp_key, algorithm="RS256", headers={"kid": "k1"})
        assert await _register(b.address, good) == "OK"
        other = jwt.encode(claims, _rsa(), algorithm="RS256", headers={"kid": "k1"})
        assert await _register(b.address, other) == "UNAUTHENTICATED"
    finally:
        await b.stop(0.2)
