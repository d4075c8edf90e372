"""Storage URLs read as SQLAlchemy reads them: three slashes then a relative path, four for an
absolute one."""

from __future__ import annotations

import logging

import pytest

from broker.errors import BrokerError
from broker.storage import redact, sqlite_path


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///data/broker.db", "data/broker.db"),
        ("sqlite:///./data/broker.db", "./data/broker.db"),
        ("sqlite:////var/lib/broker.db", "/var/lib/broker.db"),
        ("sqlite://", ":memory:"),
        ("sqlite:///:memory:", ":memory:"),
        ("data/broker.db", "data/broker.db"),
        ("/var/lib/broker.db", "/var/lib/broker.db"),
        ("postgresql://db/broker", None),
    ],
)
def test_sqlite_urls_resolve_like_sqlalchemy(url, path):
    assert sqlite_path(url) == path


@pytest.mark.parametrize("url", ["sqlite://host/broker.db", "sqlite://broker.db"])
def test_a_sqlite_url_with_a_host_is_refused(url):
    with pytest.raises(BrokerError, match="sqlite:///"):
        sqlite_path(url)


async def test_the_resolved_database_path_is_logged_at_start(tmp_path, monkeypatch, caplog):
    from broker.server import start_server
    from tests.conftest import make_settings

    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.INFO, logger="broker")
    b = await start_server(make_settings(tmp_path, db="sqlite:///relative.db"))
    try:
        assert (tmp_path / "relative.db").exists()
        assert [r for r in caplog.records if str(tmp_path / "relative.db") in r.getMessage()]
    finally:
        await b.stop(0.1)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://a2a:s3cr:et@db:5432/a2a", "postgresql://a2a:***@db:5432/a2a"),
        ("postgresql://a2a@db/a2a", "postgresql://a2a@db/a2a"),
        ("data/broker.db", "data/broker.db"),
    ],
)
def test_a_url_in_logs_never_shows_its_password(url, shown):
    assert redact(url) == shown
