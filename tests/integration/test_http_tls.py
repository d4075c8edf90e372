"""TLS on the HTTP listener, with the gRPC port's certificate options: a certificate for
127.0.0.1 serving the console (its session cookie Secure), /metrics and the A2A bindings; a
rotated certificate served without a restart; and mutual TLS, the client certificate naming the
caller as on gRPC."""

from __future__ import annotations

import os
import ssl
from pathlib import Path

import httpx
import pytest
from a2a.client import ClientConfig, create_client
from a2a.types import a2a_pb2 as a2a

from broker.models.a2a import A2AListQuery
from broker.models.agents import RegisterInput
from broker.server import start_server
from tests.conftest import eventually, make_settings

from .a2a_support import collect, text_message
from .security_support import issue
from .tls_support import CA, write_server_files


def trusting(ca: CA, tmp_path: Path, client: tuple[bytes, bytes] | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cadata=ca.pem.decode())
    if client is not None:
        (tmp_path / "client.pem").write_bytes(client[0])
        (tmp_path / "client.key").write_bytes(client[1])
        ctx.load_cert_chain(tmp_path / "client.pem", tmp_path / "client.key")
    return ctx


async def test_the_console_metrics_and_a2a_are_served_over_tls(tmp_path: Path) -> None:
    ca = CA()
    settings = make_settings(
        tmp_path, auth="token", http_address="127.0.0.1:0", **write_server_files(tmp_path, ca)
    )
    b = await start_server(settings)
    try:
        assert b.http_url is not None and b.http_url.startswith("https://127.0.0.1:")
        admin, alice = issue(settings.db, "ops", "admin"), issue(settings.db, "alice", "orchestrator")
        with pytest.raises(httpx.HTTPError):  # plaintext HTTP gets no answer
            async with httpx.AsyncClient() as plain:
                await plain.get(f"http://{b.http_address}/healthz")
        async with httpx.AsyncClient(verify=trusting(ca, tmp_path)) as http:
            assert (await http.get(f"{b.http_url}/healthz")).text == "ok\n"
            metrics = await http.get(f"{b.http_url}/metrics", headers={"Authorization": f"Bearer {admin}"})
            assert metrics.status_code == 200 and "a2a_tasks_submitted" in metrics.text
            signed_in = await http.post(f"{b.http_url}/api/session", json={"token": admin})
            cookie = signed_in.headers["set-cookie"]
            assert "a2a_console=" in cookie and "Secure" in cookie and "HttpOnly" in cookie
            assert (await http.get(f"{b.http_url}/api/overview")).status_code == 200  # the cookie, over TLS
            card = (await http.get(f"{b.http_url}/.well-known/agent-card.json")).json()
            urls = [i["url"] for i in card["supportedInterfaces"] if i["protocolBinding"] != "GRPC"]
            assert urls and all(u.startswith(f"{b.http_url}") for u in urls)
        # a standard A2A client over https (JSON-RPC), with its token: the broker's own skill answers
        verified = httpx.AsyncClient(
            verify=trusting(ca, tmp_path), headers={"Authorization": f"Bearer {alice}"}
        )
        client = await create_client(
            b.http_url, client_config=ClientConfig(httpx_client=verified, streaming=False)
        )
        (resp,) = await collect(
            client.send_message(text_message("who?", "t-1", skill="a2a-broker.directory"))
        )
        assert resp.message.parts[0].text == "no agent is registered"
        listed = await client.list_tasks(a2a.ListTasksRequest())
        assert listed.total_size == 0
        await client.close()
        await verified.aclose()
    finally:
        await b.stop(0.2)


async def test_a_rotated_certificate_is_served_over_https_without_a_restart(tmp_path: Path) -> None:
    old_ca, new_ca = CA("old"), CA("new")
    b = await start_server(
        make_settings(tmp_path, http_address="127.0.0.1:0", **write_server_files(tmp_path, old_ca))
    )
    try:
        async with httpx.AsyncClient(verify=trusting(old_ca, tmp_path)) as http:
            assert (await http.get(f"{b.http_url}/healthz")).status_code == 200
        write_server_files(tmp_path, new_ca)  # rotate: same paths, new certificate
        for name in ("server.pem", "server.key"):  # a distinct mtime even on a coarse clock
            st = os.stat(tmp_path / name)
            os.utime(tmp_path / name, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))

        async def new_one_served() -> bool:
            try:
                async with httpx.AsyncClient(verify=trusting(new_ca, tmp_path)) as http:
                    return (await http.get(f"{b.http_url}/healthz")).status_code == 200
            except httpx.ConnectError:
                return False

        await eventually(new_one_served, timeout=5, what="the new certificate on the HTTP listener")
        assert b.http is not None and b.http.tls is not None and b.http.tls.loads == 2
    finally:
        await b.stop(0.2)


async def test_with_mutual_tls_the_client_certificate_names_the_a2a_caller(tmp_path: Path) -> None:
    ca, clients = CA(), CA("clients")
    b = await start_server(
        make_settings(tmp_path, http_address="127.0.0.1:0", **write_server_files(tmp_path, ca, clients))
    )
    try:
        with pytest.raises(httpx.HTTPError):  # no client certificate: no connection
            async with httpx.AsyncClient(verify=trusting(ca, tmp_path)) as http:
                await http.get(f"{b.http_url}/healthz")
        await b.registry.register(
            RegisterInput(agent_id="echo-agent", capabilities=["echo"], max_concurrent_tasks=1)
        )
        alice = clients.issue("alice", ou="orchestrator")
        verified = httpx.AsyncClient(verify=trusting(ca, tmp_path, (alice.cert, alice.key)))
        client = await create_client(
            b.http_url, client_config=ClientConfig(httpx_client=verified, streaming=False)
        )
        req = text_message("later", "m-1")
        req.configuration.return_immediately = True
        (resp,) = await collect(client.send_message(req))
        # the task is the certificate's subject's: listed for alice, for nobody else
        assert (await b.storage.a2a_list(A2AListQuery(owner="alice")))[1] == 1
        assert (await b.storage.a2a_list(A2AListQuery(owner="anonymous")))[1] == 0
        assert [t.id for t in (await client.list_tasks(a2a.ListTasksRequest())).tasks] == [resp.task.id]
        await client.close()
        await verified.aclose()
    finally:
        await b.stop(0.2)
