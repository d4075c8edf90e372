"""Secure defaults: no non-loopback address without authentication and TLS unless --insecure
(then a warning at start and every hour); the database and lock files are owner-only."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest

from broker.cli import main
from broker.errors import BrokerError
from broker.security.exposure import InsecureReminder, is_loopback
from broker.server import start_server
from tests.conftest import make_settings

from .tls_support import CA, write_server_files


def test_loopback_addresses_are_told_from_reachable_ones() -> None:
    assert all(map(is_loopback, ["127.0.0.1:1", "localhost:1", "[::1]:1", "127.3.4.5:1", "unix:/tmp/s"]))
    assert not any(map(is_loopback, ["0.0.0.0:1", "[::]:1", "10.1.2.3:1", "broker.example.com:1"]))


async def test_non_loopback_address_without_auth_and_tls_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BrokerError, match="authentication .* and no TLS.*--insecure"):
        await start_server(make_settings(tmp_path, address="0.0.0.0:0"))
    with pytest.raises(BrokerError, match="no TLS"):
        await start_server(make_settings(tmp_path, address="0.0.0.0:0", auth="token"))
    assert not (tmp_path / "broker.db").exists()  # refused before storage was touched


def test_serve_command_exits_1_naming_what_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["serve", "--address", "0.0.0.0:0", "--db", str(tmp_path / "b.db"), "--log-format", "text"])
    assert code == 1
    assert "refusing to start" in capsys.readouterr().err


async def test_non_loopback_with_token_auth_and_tls_starts(tmp_path: Path) -> None:
    b = await start_server(
        make_settings(tmp_path, address="0.0.0.0:0", auth="token", **write_server_files(tmp_path, CA()))
    )
    await b.stop(0.2)


async def test_insecure_starts_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="broker.security"):
        b = await start_server(make_settings(tmp_path, address="0.0.0.0:0", insecure=True))
    try:
        assert any("INSECURE" in r.getMessage() for r in caplog.records)
        assert any(name == "insecure-reminder" for name, _ in b.sweeper.jobs)
    finally:
        await b.stop(0.2)


async def test_insecure_reminder_repeats_hourly_not_every_sweep(caplog: pytest.LogCaptureFixture) -> None:
    reminder = InsecureReminder("0.0.0.0:1 is reachable")
    with caplog.at_level(logging.WARNING, logger="broker.security"):
        await reminder()
        await reminder()
    assert sum("INSECURE" in r.getMessage() for r in caplog.records) == 1


async def test_database_and_lock_files_are_created_owner_only(tmp_path: Path) -> None:
    b = await start_server(make_settings(tmp_path))
    try:
        for name in ("broker.db", "broker.db-wal", "broker.db.lock"):
            mode = stat.S_IMODE((tmp_path / name).stat().st_mode)
            assert mode & 0o077 == 0, f"{name} is {oct(mode)}"
    finally:
        await b.stop(0.2)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--tls-cert", "c.pem"], "--tls-cert and --tls-key go together"),
        (["--tls-client-ca", "ca.pem"], "--tls-client-ca needs --tls-cert and --tls-key"),
        (["--auth", "jwt"], "--auth jwt needs --jwt-key-file or --jwt-jwks-file"),
    ],
)
def test_incomplete_security_settings_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], says: str
) -> None:
    assert main(["serve", "--db", str(tmp_path / "b.db"), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"a2a-broker: {says}") and err.count("\n") == 1, err
