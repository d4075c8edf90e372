"""``pytest --beside-default-broker``: run the tests while a broker serves on the default addresses
(127.0.0.1:50051 gRPC, 127.0.0.1:8080 HTTP), as ``make run`` does in another terminal.

No test may depend on a default port being free, nor reach a broker it did not start. With the
option, a broker with the default settings is started (in a temporary folder) before the first test,
in the controlling process only under pytest-xdist. A test that binds a default port fails beside
it ("in use"); a test that reaches it (a client left on the default address) is caught at the end:
its RPC count, read from its /metrics, must still be 0, and it must still be running. Either
makes the session fail.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

GRPC = ("127.0.0.1", 50051)
HTTP = ("127.0.0.1", 8080)
OPTION = "--beside-default-broker"


def _listening(where: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(where, timeout=0.2):
            return True
    except OSError:
        return False


class DefaultBroker:
    """A broker subprocess with nothing but defaults: no A2A_BROKER_* variable, no flag."""

    def __init__(self, root: Path) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="a2a-default-broker-"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("A2A_BROKER_")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "broker", "serve"],
            cwd=self.dir,  # its database: ./data/broker.db, the default
            env={**env, "PYTHONPATH": str(root)},
            stdout=subprocess.DEVNULL,
            stderr=(self.dir / "stderr").open("wb"),
        )

    def wait_listening(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not (_listening(GRPC) and _listening(HTTP)):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise pytest.UsageError(f"{OPTION}: the default broker did not start: {self.stderr()}")
            time.sleep(0.05)

    def stderr(self) -> str:
        return (self.dir / "stderr").read_text(errors="replace")[-2000:]

    def rpc_count(self) -> int:
        """RPCs the broker answered (the sum of its grpc_server_handling_seconds counts)."""
        with urllib.request.urlopen(f"http://{HTTP[0]}:{HTTP[1]}/metrics", timeout=10) as r:
            text = r.read().decode()
        return sum(
            int(float(line.rsplit(" ", 1)[1]))
            for line in text.splitlines()
            if line.startswith("grpc_server_handling_seconds_count")
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        OPTION,
        action="store_true",
        help="run the tests beside a broker serving on the default addresses (127.0.0.1:50051 and "
        ":8080, as `make run` does); fail if a test binds or reaches them",
    )


def configure(config: pytest.Config, root: Path) -> None:
    if not config.getoption(OPTION) or hasattr(config, "workerinput"):  # xdist workers: not theirs
        return
    taken = [f"{h}:{p}" for h, p in (GRPC, HTTP) if _listening((h, p))]
    if taken:
        raise pytest.UsageError(
            f"{OPTION}: {', '.join(taken)} already in use; the option starts a broker of its own "
            "there (to count its calls): stop the other one, or run the suite beside it without the option"
        )
    broker = DefaultBroker(root)
    broker.wait_listening()
    config.stash[_KEY] = broker


def finish(session: pytest.Session) -> None:
    broker = session.config.stash.get(_KEY, None)
    if broker is None:
        return
    try:
        problem = ""
        if broker.proc.poll() is not None:
            problem = f"the default broker exited with {broker.proc.returncode}: {broker.stderr()}"
        elif (calls := broker.rpc_count()) != 0:
            problem = f"{calls} RPC(s) reached the broker on the default address {GRPC[0]}:{GRPC[1]}"
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            verdict = f"FAILED: {problem}" if problem else "no test bound or reached it"
            reporter.write_line(f"\n{OPTION}: {verdict}", red=bool(problem), green=not problem)
        if problem:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    finally:
        broker.stop()


_KEY = pytest.StashKey[DefaultBroker]()
