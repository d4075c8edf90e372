"""Issue 22.8: what `a2a-broker serve` (as `make run` starts it) shows: the start line gives the
console's URL, and the logs are text on a terminal and JSON otherwise, either way overridable."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT

START = re.compile(
    r"^a2a-broker listening on 127\.0\.0\.1:(\d+) \(db: .*\); console at (http://127\.0\.0\.1:\d+/)$"
)


def serve(tmp_path: Path, stderr: int, *args: str, **env: str) -> subprocess.Popen[bytes]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("A2A_BROKER_")}
    return subprocess.Popen(
        [sys.executable, "-m", "broker", "serve", "--address", "127.0.0.1:0", "--db", str(tmp_path / "b.db"),
         "--http-address", "127.0.0.1:0", *args],
        cwd=ROOT, env={**clean, **env}, stdout=subprocess.PIPE, stderr=stderr, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def read_until(fd: int, marker: bytes, timeout: float = 30.0) -> bytes:
    """What ``fd`` gives until a line with ``marker`` is complete (fail after ``timeout`` s)."""
    seen = b""
    deadline = time.monotonic() + timeout
    while not (marker in seen and seen.endswith(b"\n")) and not (
        marker in seen and b"\n" in seen.split(marker)[1]
    ):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no {marker!r} within {timeout}s: {seen.decode(errors='replace')}")
        if select.select([fd], [], [], left)[0]:
            chunk = os.read(fd, 65536)
            if not chunk:
                raise AssertionError(f"ended before {marker!r}: {seen.decode(errors='replace')}")
            seen += chunk
    return seen


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)  # reads and closes its pipes
    assert proc.returncode == 0


def serving_line(text: bytes) -> str:
    (line,) = [x for x in text.decode().replace("\r\n", "\n").splitlines() if "broker serving" in x]
    return line


def test_the_start_line_gives_the_console_url(tmp_path):
    proc = serve(tmp_path, subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        line = read_until(proc.stdout.fileno(), b"listening on").decode().strip()
        m = START.match(line)
        assert m, line
        with urllib.request.urlopen(m.group(2), timeout=10) as resp:
            assert resp.status == 200 and b"<html" in resp.read().lower()
    finally:
        stop(proc)


@pytest.mark.parametrize(
    ("terminal", "override", "expect"),
    [(False, None, "json"), (True, None, "text"), (True, "json", "json"), (False, "text", "text")],
    ids=["pipe", "terminal", "terminal-json", "pipe-text"],
)
def test_logs_are_text_on_a_terminal_and_json_otherwise(tmp_path, terminal, override, expect):
    env = {"A2A_BROKER_LOG_FORMAT": override} if override else {}
    if terminal:
        primary, secondary = pty.openpty()
        proc = serve(tmp_path, secondary, **env)
        os.close(secondary)
        reader = primary
    else:
        proc = serve(tmp_path, subprocess.PIPE, **env)
        assert proc.stderr is not None
        reader = proc.stderr.fileno()
    try:
        line = serving_line(read_until(reader, b"broker serving"))
    finally:
        stop(proc)
        if terminal:
            os.close(primary)
    if expect == "json":
        doc = json.loads(line)
        assert doc["msg"] == "broker serving" and doc["console"].startswith("http://127.0.0.1:"), doc
    else:
        assert re.search(r" INFO broker(\.\w+)*: broker serving address=127\.0\.0\.1:\d+ ", line), line
        assert "console=http://127.0.0.1:" in line, line


@pytest.mark.parametrize(("args", "loop"), [((), "uvloop"), (("--event-loop", "asyncio"), "asyncio")])
def test_the_broker_serves_on_uvloop_unless_told_otherwise(tmp_path, args, loop):
    proc = serve(tmp_path, subprocess.PIPE, "--log-format", "json", *args)
    assert proc.stderr is not None
    try:
        line = serving_line(read_until(proc.stderr.fileno(), b"broker serving"))
        assert json.loads(line)["loop"] == loop
        # and it serves: the console answers over HTTP
        port = re.search(r'"console": "http://127\.0\.0\.1:(\d+)/"', line)
        assert port is not None, line
        with urllib.request.urlopen(f"http://127.0.0.1:{port.group(1)}/healthz", timeout=10) as resp:
            assert resp.read() == b"ok\n"
    finally:
        stop(proc)
