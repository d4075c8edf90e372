"""Issue 22.3: a connection that fails because of TLS says which TLS problem and its fix, in one
line, instead of "Is it running?": a certificate naming another host, a plaintext client at a TLS
broker, a CA that did not sign the certificate, a TLS client at a plaintext broker."""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from broker.server import Broker, start_server
from tests.conftest import make_settings
from tests.e2e.test_cli_agents import cli
from tests.e2e.test_cli_errors import assert_one_line
from tests.integration.tls_support import CA

EXIT_UNREACHABLE = 3


def certificate_for(ca: CA, dns_name: str, directory: Path) -> tuple[str, str]:
    """A server certificate naming only ``dns_name``, signed by ``ca``: (cert file, key file)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_name)]))
        .issuer_name(ca.name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns_name)]), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    (directory / "broker.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "broker.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return str(directory / "broker.pem"), str(directory / "broker.key")


@pytest.fixture
def ca(tmp_path: Path) -> CA:
    authority = CA("broker-ca")
    (tmp_path / "ca.pem").write_bytes(authority.pem)
    return authority


@pytest.fixture
async def tls_broker(tmp_path: Path, ca: CA) -> AsyncIterator[Broker]:
    """A TLS broker whose certificate names broker.example.com only (the README's deployment)."""
    cert, key = certificate_for(ca, "broker.example.com", tmp_path)
    b = await start_server(make_settings(tmp_path, tls_cert=cert, tls_key=key))
    try:
        yield b
    finally:
        await b.stop(0.2)


async def test_a_certificate_for_another_name_is_named_with_the_fix(tls_broker, tmp_path):
    r = await cli(tls_broker.address, "agents", "list", "--ca", str(tmp_path / "ca.pem"))
    assert r.rc == EXIT_UNREACHABLE, r
    assert_one_line(r.err, "certificate does not name 127.0.0.1", "subjectAltName=IP:127.0.0.1", "--address")
    assert "Is it running" not in r.err


async def test_a_plaintext_client_at_a_tls_broker_is_told_to_give_the_ca(tls_broker):
    r = await cli(tls_broker.address, "agents", "list")
    assert r.rc == EXIT_UNREACHABLE, r
    assert_one_line(r.err, "speaks TLS", "--ca", "A2A_BROKER_CA")
    assert "Is it running" not in r.err


async def test_a_ca_that_did_not_sign_the_certificate_is_named(tls_broker, tmp_path):
    other = tmp_path / "other-ca.pem"
    other.write_bytes(CA("someone-else").pem)
    r = await cli(tls_broker.address, "agents", "list", "--ca", str(other))
    assert r.rc == EXIT_UNREACHABLE, r
    assert_one_line(r.err, "not signed by a CA this client trusts", f"--ca {other}")


async def test_a_tls_client_at_a_plaintext_broker_is_told_so(broker, tmp_path, ca):
    r = await cli(broker.address, "agents", "list", "--ca", str(tmp_path / "ca.pem"))
    assert r.rc == EXIT_UNREACHABLE, r
    assert_one_line(r.err, "does not speak TLS", "--ca")


async def test_a_broker_that_is_not_running_is_still_said_to_be_maybe_not_running(tmp_path):
    from tests.conftest import free_port

    r = await cli(f"127.0.0.1:{free_port()}", "agents", "list")
    assert r.rc == EXIT_UNREACHABLE, r
    assert_one_line(r.err, "Is it running?")
