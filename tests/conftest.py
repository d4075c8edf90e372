"""Shared fixtures: a real broker on a free port with a temporary SQLite file."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest

from broker.clock import Clock
from broker.config import Settings
from broker.pb import agents_pb2_grpc, messaging_pb2_grpc, tasks_pb2_grpc
from broker.server import Broker, start_server
from tests import beside_default, xdist_groups
from tests.pg_support import PgCluster, remove_cluster, start_cluster

ROOT = Path(__file__).resolve().parent.parent
# The tests run the same whatever the shell exports: the broker's and the clients' variables
# (A2A_BROKER_ADDRESS, a token...) are dropped. Brokers the tests start as subprocesses (serve,
# examples, the README's snippets) open no HTTP listener unless a test asks for one on a free port:
# the default address may be `make run`'s, and several tests run at once.
for _name in [n for n in os.environ if n.startswith("A2A_BROKER_")]:
    del os.environ[_name]
os.environ["A2A_BROKER_HTTP_ADDRESS"] = "off"
T = TypeVar("T")


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "address": "127.0.0.1:0",
        "db": str(tmp_path / "broker.db"),
        "sweeper_period_s": 0.05,
        "shutdown_grace_s": 0.5,
        "log_format": "text",
        # Tests need durability semantics, not fsync latency; crash tests use FULL.
        "sqlite_synchronous": "NORMAL",
        "http_address": "off",  # tests that want the HTTP listener ask for 127.0.0.1:0
    }
    values.update(overrides)
    return Settings.load(values, env={})


@dataclass
class Stubs:
    channel: grpc.aio.Channel
    agents: agents_pb2_grpc.AgentRegistryStub
    messaging: messaging_pb2_grpc.MessagingStub
    tasks: tasks_pb2_grpc.TaskQueueStub


def stubs_for(address: str) -> Stubs:
    channel = grpc.aio.insecure_channel(address)
    return Stubs(
        channel,
        agents_pb2_grpc.AgentRegistryStub(channel),
        messaging_pb2_grpc.MessagingStub(channel),
        tasks_pb2_grpc.TaskQueueStub(channel),
    )


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """A throwaway PostgreSQL cluster for the session (started on first use), with a migrated
    template database that each test's database is copied from."""
    from broker.storage.postgres.migrate import migrate

    cluster = start_cluster()
    try:
        cluster.psql("CREATE DATABASE a2a_template")
        migrate(cluster.url("a2a_template"))
        yield cluster
    finally:
        remove_cluster(cluster)


@pytest.fixture(scope="session")
def pg_reused(pg_cluster: PgCluster) -> list[str]:
    """The database the tests take turns on (emptied after each), in a list so that a test that
    leaves it unusable can have it replaced."""
    return [pg_cluster.create_database("a2a_template")]


@pytest.fixture
def pg_url(pg_cluster: PgCluster, pg_reused: list[str]) -> Iterator[str]:
    """The URL of an empty, migrated PostgreSQL database for this test alone: the session's
    database, emptied afterwards (TRUNCATE takes milliseconds; CREATE DATABASE takes 0.3 s)."""
    url = pg_cluster.url(pg_reused[0])
    yield url
    if not pg_cluster.empty(url):
        pg_reused[0] = pg_cluster.create_database("a2a_template")


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Override in a test module (or with indirect parametrisation) to tune the broker."""
    return {}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--backend",
        choices=["sqlite", "postgres"],
        default="sqlite",
        help="storage of the `broker` fixture's broker (postgres: a throwaway cluster, see pg_support.py)",
    )
    beside_default.addoption(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(xdist_groups, "xdist_groups")
    beside_default.configure(config, ROOT)


def pytest_sessionfinish(session: pytest.Session) -> None:
    beside_default.finish(session)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With --backend postgres, only the tests whose broker that puts on PostgreSQL run (the `broker`
    fixture's, or brokers of their own given ``backend_overrides``): the others would only run again
    on SQLite."""
    if config.getoption("--backend") == "sqlite":
        return
    on_backend = {"broker", "pg_url", "backend_overrides"}
    keep = [i for i in items if on_backend & set(getattr(i, "fixturenames", ()))]
    config.hook.pytest_deselected(items=[i for i in items if i not in keep])
    items[:] = keep


@pytest.fixture
def backend_overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Settings that put the `broker` fixture's broker on the backend named by --backend."""
    if request.config.getoption("--backend") == "postgres":
        return {"db": request.getfixturevalue("pg_url")}
    return {}


@pytest.fixture
def broker_clock(request: pytest.FixtureRequest) -> Clock | None:
    """The clock of the `broker` fixture's broker: None for the system's. A test that moves time
    by hand is marked ``@manual_clock`` (tests/clock_support.py): a ManualClock."""
    make = getattr(request, "param", None)
    return make() if make is not None else None


@pytest.fixture
async def broker(
    tmp_path: Path,
    settings_overrides: dict[str, Any],
    backend_overrides: dict[str, Any],
    broker_clock: Clock | None,
) -> AsyncIterator[Broker]:
    settings = make_settings(tmp_path, **{**settings_overrides, **backend_overrides})
    b = await start_server(settings, clock=broker_clock)
    try:
        yield b
    finally:
        await stopped(b)


async def stopped(b: Broker, within: float = 30.0) -> None:
    """Stop a broker; one that does not stop in time fails the test with what is still waiting."""
    try:
        await asyncio.wait_for(asyncio.shield(b.stop(0.2)), within)
    except TimeoutError:
        raise AssertionError(f"the broker did not stop within {within}s; tasks:\n{_tasks()}") from None


def _tasks() -> str:
    """Every task of the loop and where it waits (frames of Python code only)."""
    out = []
    for task in asyncio.all_tasks():
        frames, coro = [], task.get_coro()
        while coro is not None:  # down the chain of awaits
            frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
            if frame is not None:
                frames.append(f"{frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
            else:
                frames.append(repr(coro))
            coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
        out.append(f"{task.get_name()}\n    " + "\n    ".join(frames))
    return "\n".join(out)


@pytest.fixture
async def stubs(broker: Broker) -> AsyncIterator[Stubs]:
    s = stubs_for(broker.address)
    try:
        yield s
    finally:
        await s.channel.close()


async def eventually(
    check: Callable[[], Awaitable[T]], timeout: float = 5.0, interval: float = 0.02, what: str = "condition"
) -> T:
    """Poll an async check until it returns a truthy value, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = await check()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
        await asyncio.sleep(interval)


async def next_within(stream: Any, timeout: float = 5.0) -> Any:
    """The next item of a gRPC response stream, or fail after ``timeout`` seconds."""
    try:
        return await asyncio.wait_for(stream.read(), timeout)
    except TimeoutError:
        raise AssertionError(f"no stream item within {timeout}s") from None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class BrokerProcess:
    """The broker as a subprocess (for crash and restart tests)."""

    def __init__(self, db: Path, port: int | None = None, **env: str) -> None:
        self.db = db
        self.port = port or free_port()
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        env = {
            **os.environ,
            "A2A_BROKER_ADDRESS": self.address,
            "A2A_BROKER_DB": str(self.db),
            "A2A_BROKER_LOG_FORMAT": "text",
            **self.env,
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "broker", "serve"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"broker exited with {self.proc.returncode}: {err[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        self.kill()
        raise RuntimeError("broker did not start listening in time")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def terminate(self, timeout: float = 10.0) -> int:
        assert self.proc is not None
        self.proc.terminate()
        return self.proc.wait(timeout)


@pytest.fixture
def broker_process(tmp_path: Path) -> Iterator[Callable[..., BrokerProcess]]:
    made: list[BrokerProcess] = []

    def make(db: Path | None = None, **env: str) -> BrokerProcess:
        p = BrokerProcess(db or tmp_path / "broker.db", **env)
        made.append(p)
        return p

    yield make
    for p in made:
        p.kill()
        if p.proc and p.proc.stderr:
            p.proc.stderr.close()
