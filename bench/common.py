"""Shared benchmark helpers: server subprocesses, the bare gRPC echo baseline, statistics, printing.

Stable API (the messaging and task-queue benchmarks use it):

- ``spawn_broker(db, **env) -> Proc`` and ``spawn_echo() -> Proc``: a server in its own process
  (so client and server each get a core, as in production), listening on ``proc.address``.
- ``echo_baseline(...) -> dict``: what bare grpc.aio does on this machine, same run: unary calls/s
  with N in flight, one-in-flight round trip, server-stream pushes/s (one message per frame).
- ``unary_rate(call, n, concurrency)``, ``median``, ``percentile``, ``best_of`` helpers,
  ``Report`` to print figures with their ratio to a baseline.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

ROOT = Path(__file__).resolve().parent.parent
ECHO_UNARY = "/bench.Echo/Unary"
ECHO_STREAM = "/bench.Echo/Stream"
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    """A server subprocess listening on 127.0.0.1:<port>."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None, port: int | None = None) -> None:
        self.port = port or free_port()
        self.args = args
        self.env = {**os.environ, **(env or {})}
        self._err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            args, env=self.env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=self._err
        )
        self._wait_listening()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _wait_listening(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._err.seek(0)
                raise RuntimeError(f"{self.args} exited: {self._err.read().decode()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.args} did not listen in time")

    def cpu_s(self) -> float:
        """CPU seconds (user + system, all threads) the process has used so far."""
        try:
            with open(f"/proc/{self.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> float:
        """Resident memory now (MiB)."""
        return _status_kb(self.pid, "VmRSS") / 1024

    def peak_rss_mb(self) -> float:
        """Peak resident memory over the process's life (MiB)."""
        return _status_kb(self.pid, "VmHWM") / 1024

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._err.close()

    def __enter__(self) -> Proc:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _status_kb(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


async def start_peer(*args: str) -> asyncio.subprocess.Process:
    """``python -m bench.peer ARGS`` (a subscriber or worker in its own process, bench/peer.py),
    once it printed "ready"."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.peer", *args, cwd=ROOT, stdout=subprocess.PIPE
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    if line.strip() != b"ready":
        proc.kill()
        raise RuntimeError(f"bench.peer {args[0]} did not start: {line!r}")
    return proc


@contextlib.asynccontextmanager
async def workers_done(procs: list[asyncio.subprocess.Process], total: int) -> AsyncIterator[asyncio.Event]:
    """Follow worker processes that print ``done N`` (how many they finished) as they go: the event
    is set once their counts add up to ``total``. On leaving, the workers are killed and reaped."""
    done = [0] * len(procs)
    all_done = asyncio.Event()

    async def follow(i: int, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        async for line in proc.stdout:
            if line.startswith(b"done "):
                done[i] = int(line.split()[1])
                if sum(done) >= total:
                    all_done.set()

    followers = [asyncio.ensure_future(follow(i, p)) for i, p in enumerate(procs)]
    try:
        yield all_done
    finally:
        for f in followers:
            f.cancel()
        for p in procs:
            if p.returncode is None:
                p.kill()
            await p.wait()


def spawn_broker(db: str | Path, **env: str) -> Proc:
    """The broker (``python -m broker serve``) on a free port with its SQLite file at ``db``.

    Durable settings by default (synchronous=FULL); a slow sweeper, as in production."""
    port = free_port()
    base = {
        "A2A_BROKER_ADDRESS": f"127.0.0.1:{port}",
        "A2A_BROKER_DB": str(db),
        "A2A_BROKER_LOG_LEVEL": "WARNING",
        "A2A_BROKER_SQLITE_SYNCHRONOUS": "FULL",
        "A2A_BROKER_HTTP_ADDRESS": "127.0.0.1:0",  # on (as by default), on a port of its own
    }
    return Proc([sys.executable, "-m", "broker", "serve"], {**base, **env}, port)


def spawn_echo() -> Proc:
    """The bare gRPC echo server (bench/echo.py): generic echo methods and an in-memory Messaging."""
    port = free_port()
    return Proc([sys.executable, "-m", "bench.echo", "--port", str(port)], port=port)


def channel(address: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)


# -- measuring ------------------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values)


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (0-100), nearest rank."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(p / 100 * len(s) + 0.5)) - 1))
    return s[k]


async def unary_rate(call: Callable[[], Awaitable[Any]], n: int, concurrency: int) -> float:
    """Calls per second for ``n`` calls of ``call()``, ``concurrency`` in flight at any time."""
    left = n

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await call()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return n / (time.perf_counter() - t0)


async def round_trip_ms(call: Callable[[], Awaitable[Any]], n: int) -> float:
    """Median milliseconds per call, one in flight."""
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        await call()
        times.append((time.perf_counter() - t0) * 1000)
    return median(times)


async def echo_baseline(
    address: str, *, concurrency: int = 64, calls: int = 6000, payload: int = 100, stream_msgs: int = 20_000
) -> dict[str, float]:
    """Bare grpc.aio on this machine: unary echo calls/s with ``concurrency`` in flight, one-in-flight
    round trip (ms), and server-stream messages/s at one message per frame."""
    ch = channel(address)
    try:
        unary = ch.unary_unary(ECHO_UNARY)
        stream = ch.unary_stream(ECHO_STREAM)
        body = b"x" * payload
        await unary(body)  # connect
        out = {
            "unary_per_s": await unary_rate(lambda: unary(body), calls, concurrency),
            "round_trip_ms": await round_trip_ms(lambda: unary(body), 500),
        }
        t0 = time.perf_counter()
        n = 0
        async for _ in stream(f"{stream_msgs}:{payload}".encode()):
            n += 1
        out["stream_per_s"] = n / (time.perf_counter() - t0)
        return out
    finally:
        await ch.close()


# -- reporting ------------------------------------------------------------------------------------


@dataclass
class Report:
    """Figures (medians of runs) printed with their ratio to the bare gRPC figure of the same run."""

    title: str
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)

    def add(
        self,
        name: str,
        value: float,
        unit: str,
        baseline: float | None = None,
        target: str = "",
        lower_better: bool = False,
        ratio_of_runs: float | None = None,
    ) -> None:
        """``ratio_of_runs``: value / baseline taken per run, then the median (steadier than the
        ratio of the medians when the machine's load changes between runs)."""
        ratio = ""
        if baseline or ratio_of_runs:
            r = ratio_of_runs if ratio_of_runs is not None else value / baseline  # type: ignore[operator]
            if lower_better:
                ratio = f"bare gRPC is {1 / r:.0%} of this"
            else:
                ratio = f"{r:.0%} of bare gRPC"
        fmt = f"{value:,.0f}" if value >= 100 else f"{value:,.2f}"
        self.rows.append((name, f"{fmt} {unit}", ratio, target))

    def note(self, text: str) -> None:
        self.rows.append((text, "", "", ""))

    def print(self) -> None:
        print(f"\n== {self.title}")
        w0 = max(len(r[0]) for r in self.rows if r[1]) if any(r[1] for r in self.rows) else 0
        w1 = max((len(r[1]) for r in self.rows), default=0)
        w2 = max((len(r[2]) for r in self.rows), default=0)
        for name, value, ratio, target in self.rows:
            if not value:
                print(f"  {name}")
                continue
            line = f"  {name:<{w0}}  {value:>{w1}}  {ratio:<{w2}}"
            if target:
                line += f"  [{target}]"
            print(line.rstrip())
        sys.stdout.flush()
