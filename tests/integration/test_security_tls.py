"""TLS: plaintext refused, mTLS needs a client certificate whose CN names the agent, and a
rotated certificate is served without a restart."""

from __future__ import annotations

import os
from pathlib import Path

import grpc

from broker.server import start_server
from tests.conftest import eventually, make_settings

from .security_support import issue, register_outcome
from .tls_support import CA, write_server_files


async def _register(
    address: str, creds: grpc.ChannelCredentials | None, agent_id: str, token: str | None = None
) -> str:
    return await register_outcome(address, token, agent_id, creds)


async def test_tls_server_refuses_a_plaintext_client_and_serves_a_tls_one(tmp_path: Path) -> None:
    ca = CA()
    b = await start_server(make_settings(tmp_path, **write_server_files(tmp_path, ca)))
    try:
        assert await _register(b.address, None, "a1") == "UNAVAILABLE"
        assert await _register(b.address, grpc.ssl_channel_credentials(ca.pem), "a1") == "OK"
    finally:
        await b.stop(0.2)


async def test_mtls_refuses_a_client_without_certificate_and_the_cn_names_the_agent(tmp_path: Path) -> None:
    ca, clients = CA(), CA("clients")
    b = await start_server(make_settings(tmp_path, **write_server_files(tmp_path, ca, clients)))
    try:
        assert await _register(b.address, grpc.ssl_channel_credentials(ca.pem), "a1") == "UNAVAILABLE"
        a1 = clients.issue("a1")
        creds = grpc.ssl_channel_credentials(ca.pem, a1.key, a1.cert)
        assert await _register(b.address, creds, "a1") == "OK"
        assert await _register(b.address, creds, "a2") == "PERMISSION_DENIED"
        stranger = CA("stranger").issue("a1")  # right CN, wrong CA
        bad = grpc.ssl_channel_credentials(ca.pem, stranger.key, stranger.cert)
        assert await _register(b.address, bad, "a1") == "UNAVAILABLE"
        admin = clients.issue("ops", ou="admin")
        assert (
            await _register(b.address, grpc.ssl_channel_credentials(ca.pem, admin.key, admin.cert), "a2")
            == "OK"
        )
    finally:
        await b.stop(0.2)


async def test_mtls_with_tokens_the_token_names_the_caller(tmp_path: Path) -> None:
    ca, clients = CA(), CA("clients")
    settings = make_settings(tmp_path, auth="token", **write_server_files(tmp_path, ca, clients))
    b = await start_server(settings)
    try:
        c = clients.issue("host-1")
        creds = grpc.ssl_channel_credentials(ca.pem, c.key, c.cert)
        assert await _register(b.address, creds, "a1", issue(settings.db, "a1")) == "OK"
        assert await _register(b.address, creds, "a1", "a2a.bad.token") == "UNAUTHENTICATED"
    finally:
        await b.stop(0.2)


async def test_rotated_certificate_is_served_without_restart(tmp_path: Path) -> None:
    old_ca, new_ca = CA("old"), CA("new")
    b = await start_server(make_settings(tmp_path, **write_server_files(tmp_path, old_ca)))
    try:
        assert await _register(b.address, grpc.ssl_channel_credentials(old_ca.pem), "a1") == "OK"
        write_server_files(tmp_path, new_ca)  # rotate: same paths, new certificate
        for name in ("server.pem", "server.key"):  # a distinct mtime even on a coarse clock
            st = os.stat(tmp_path / name)
            os.utime(tmp_path / name, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
        assert await _register(b.address, grpc.ssl_channel_credentials(new_ca.pem), "a1") == "OK"
        assert await _register(b.address, grpc.ssl_channel_credentials(old_ca.pem), "a1") == "UNAVAILABLE"
        assert b.tls is not None and b.tls.loads == 2
    finally:
        await b.stop(0.2)


async def test_sighup_reload_rereads_the_files(tmp_path: Path) -> None:
    ca = CA()
    b = await start_server(make_settings(tmp_path, **write_server_files(tmp_path, ca)))
    try:
        assert b.tls is not None
        b.tls.request_reload()  # what the SIGHUP handler calls
        assert await _register(b.address, grpc.ssl_channel_credentials(ca.pem), "a1") == "OK"
        assert b.tls.loads == 2
    finally:
        await b.stop(0.2)


async def test_sighup_reloads_certificates_in_a_running_broker_process(
    tmp_path: Path, broker_process
) -> None:  # type: ignore[no-untyped-def]
    import signal

    old_ca, new_ca = CA("old"), CA("new")
    files = write_server_files(tmp_path, old_ca)
    proc = broker_process(A2A_BROKER_TLS_CERT=files["tls_cert"], A2A_BROKER_TLS_KEY=files["tls_key"])
    proc.start()
    assert await _register(proc.address, grpc.ssl_channel_credentials(old_ca.pem), "a1") == "OK"
    stamps = {n: os.stat(tmp_path / n) for n in ("server.pem", "server.key")}
    write_server_files(tmp_path, new_ca)
    for n, st in stamps.items():  # the old modification times: only the signal can tell
        os.utime(tmp_path / n, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert proc.proc is not None
    proc.proc.send_signal(signal.SIGHUP)  # without a handler, SIGHUP would end the broker

    async def served_with_new() -> bool:  # the loop handles the signal soon, not at once
        return await _register(proc.address, grpc.ssl_channel_credentials(new_ca.pem), "a1") == "OK"

    await eventually(served_with_new, timeout=10, what="the new certificate after SIGHUP")
    assert proc.proc.poll() is None
