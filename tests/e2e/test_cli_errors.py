"""Ordinary mistakes on the command line: one line on stderr naming the problem and the fix, the
documented exit code (2 usage or settings, 1 cannot start), and never a traceback."""

from __future__ import annotations

import socket

import pytest

from tests.conftest import free_port
from tests.e2e.test_cli_agents import cli

EXIT_START_FAILED = 1
EXIT_USAGE = 2


def assert_one_line(err: str, *words: str) -> None:
    lines = err.strip().splitlines()
    assert "Traceback" not in err, err
    assert len(lines) == 1, err
    for w in words:
        assert w in lines[0], err


CLIENT_USAGE = [
    (("messages", "list", "--since", "yesterday"), ("--since", "yesterday", "ISO 8601")),
    (("messages", "list", "--until", "later"), ("--until", "later")),
    (
        ("send", "--from", "a", "--to", "b", "hi", "--deliver-after", "tomorrow"),
        ("--deliver-after", "tomorrow"),
    ),
    (("tasks", "submit", "x", "--deadline", "soon"), ("--deadline", "soon")),
]


@pytest.mark.parametrize(("args", "words"), CLIENT_USAGE, ids=[a[-2] for a, _ in CLIENT_USAGE])
async def test_a_bad_time_argument_is_a_one_line_usage_error(tmp_path, args, words):
    # No broker is needed: the arguments are refused before any call.
    r = await cli("127.0.0.1:1", *args)
    assert r.rc == EXIT_USAGE, r.err
    assert_one_line(r.err, *words)


async def test_serve_with_a_non_numeric_port_is_a_one_line_usage_error(tmp_path):
    r = await cli(None, "serve", "--address", "0.0.0.0:abc", "--db", str(tmp_path / "b.db"))
    assert r.rc == EXIT_USAGE, r.err
    assert_one_line(r.err, "--address", "port")


async def test_serve_on_an_unreachable_postgresql_says_so_in_one_line_without_the_password(tmp_path):
    port = free_port()  # nothing listens there
    url = f"postgresql://user:s3cret@127.0.0.1:{port}/broker"
    r = await cli(None, "serve", "--address", "127.0.0.1:0", "--db", url)  # not the default: may be in use
    assert r.rc == EXIT_START_FAILED, r.err
    assert "Traceback" not in r.err and "s3cret" not in r.err, r.err
    # The log said where it was going (password masked); the error is one line of its own.
    error = r.err.strip().splitlines()[-1]
    assert error.startswith("a2a-broker: cannot reach PostgreSQL at ") and f"127.0.0.1:{port}" in error, r.err


async def test_serve_on_a_busy_port_says_so_in_one_line(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = await cli(None, "serve", "--address", f"127.0.0.1:{port}", "--db", str(tmp_path / "b.db"))
    assert r.rc == EXIT_START_FAILED, r.err
    assert_one_line(r.err, f"127.0.0.1:{port}", "in use", "--address")
