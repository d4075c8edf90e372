"""One broker on several cores (``python -m bench processes``): ``a2a-broker serve --processes N``
on PostgreSQL with 1 process and with 2, in the same run.

A throwaway PostgreSQL cluster with its durable defaults (as bench/postgres.py), a fresh database
for each phase. Per run, for N = 1 and 2 (the order alternating between runs):

- Publish: ``PUBLISHERS`` clients, each on its own TCP connection (the kernel spreads connections,
  not calls, over the processes), each a Publish stream of ``PER_PUBLISHER`` messages, one per
  frame, the broker's window respected; msgs/s over the whole;
- task cycle: bench/tasks.py's ``_cycle`` (10 worker processes on Work, capacity 10 each, 10,000
  tasks submitted while they work);
- CPU over each phase, as a share of one core: the broker's processes (all of them), PostgreSQL's
  (the postmaster and its backends), and what is left of the machine's cores.

Figures are medians of ``RUNS`` runs (``BENCH_RUNS``, default 3); the 2-against-1 ratios are taken
within each run, then the median.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc

from broker.pb import agents_pb2_grpc, messaging_pb2_grpc
from tests.pg_support import PgCluster, remove_cluster, start_cluster

from .common import CHANNEL_OPTIONS, Proc, Report, median
from .messaging import Client
from .tasks import SUBMIT_RETRIES, _cycle

RUNS = int(os.environ.get("BENCH_RUNS", "3"))
PUBLISHERS = 4
PER_PUBLISHER = 5_000


class RunFailed(Exception):
    """A phase did not finish (the run is measured again)."""


class Supervisor(Proc):
    """``a2a-broker serve --processes n``, up once each of its processes listens."""

    def __init__(self, db: str, n: int) -> None:
        self.n = n
        env = {
            "A2A_BROKER_DB": db,
            "A2A_BROKER_LOG_LEVEL": "WARNING",
            "A2A_BROKER_LOG_FORMAT": "text",
            "A2A_BROKER_HTTP_ADDRESS": "off",
            "A2A_BROKER_QUOTA_CALLS_PER_S": "0",
        }
        port = _free_port()
        env["A2A_BROKER_ADDRESS"] = f"127.0.0.1:{port}"
        super().__init__([sys.executable, "-m", "broker", "serve", "--processes", str(n)], env, port)

    def _wait_listening(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while _listeners(self.port) < self.n:  # one listening socket per process (SO_REUSEPORT)
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.n} processes did not listen (exit {self.proc.returncode})")
            time.sleep(0.05)

    def pids(self) -> list[int]:
        return [self.pid, *_descendants(self.pid)] if self.n > 1 else [self.pid]


def _free_port() -> int:
    from .common import free_port

    return free_port()


def _listeners(port: int) -> int:
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            n += int(f[1].rsplit(":", 1)[1], 16) == port and f[3] == "0A"
    return n


def _descendants(pid: int) -> list[int]:
    try:
        kids = [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
    return [k for c in kids for k in (c, *_descendants(c))]


def _cpu_s(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _postgres_pids(cluster: PgCluster) -> list[int]:
    postmaster = int((cluster.root / "data" / "postmaster.pid").read_text().split()[0])
    return [postmaster, *_descendants(postmaster)]


async def _timed(
    phase: Callable[[], Awaitable[float]], broker: Supervisor, cluster: PgCluster
) -> tuple[float, float, float, float]:
    """(rate, broker CPU, PostgreSQL CPU, machine CPU), CPU as a share of one core over the phase."""
    bpids, ppids = broker.pids(), _postgres_pids(cluster)
    b0, p0, m0, t0 = _cpu_s(bpids), _cpu_s(ppids), _machine_cpu_s(), time.perf_counter()
    rate = await phase()
    wall = time.perf_counter() - t0
    bpids = broker.pids()  # (the same processes: none is restarted)
    b = (_cpu_s(bpids) - b0) / wall
    p = (_cpu_s(_postgres_pids(cluster)) - p0) / wall
    return rate, b, p, (_machine_cpu_s() - m0) / wall


def _machine_cpu_s() -> float:
    """CPU seconds every core has spent busy since boot (/proc/stat: all but idle and iowait)."""
    f = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(f[:8]) - f[3] - f[4]) / os.sysconf("SC_CLK_TCK")


def _own_connection(address: str) -> Client:
    c = Client(address, True)
    c.ch = grpc.aio.insecure_channel(
        address, options=[*CHANNEL_OPTIONS, ("grpc.use_local_subchannel_pool", 1)]
    )
    c.msg = messaging_pb2_grpc.MessagingStub(c.ch)
    c.agents = agents_pb2_grpc.AgentRegistryStub(c.ch)
    return c


async def _publish(address: str) -> float:
    clients = [_own_connection(address) for _ in range(PUBLISHERS)]
    try:
        await clients[0].setup()
        t0 = time.perf_counter()
        await asyncio.gather(*(c.publish_rate(PER_PUBLISHER) for c in clients))
        return PUBLISHERS * PER_PUBLISHER / (time.perf_counter() - t0)
    finally:
        for c in clients:
            await c.close()


async def _one(cluster: PgCluster, n: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, phase in (("publish", _publish), ("cycle", lambda a: _cycle(a, "work"))):
        with Supervisor(cluster.url(cluster.create_database()), n) as broker:
            try:
                rate, b, p, m = await _timed(lambda: phase(broker.address), broker, cluster)  # noqa: B023
            except (TimeoutError, grpc.aio.AioRpcError) as exc:
                broker._err.seek(0)
                said = broker._err.read().decode()[-3000:]
                raise RunFailed(f"{name} with {n} processes: {exc!r}; the broker said:\n{said}") from exc
        out.update({name: rate, f"{name}_broker_cpu": b, f"{name}_pg_cpu": p, f"{name}_machine_cpu": m})
    out["submit_retries"], SUBMIT_RETRIES[0] = SUBMIT_RETRIES[0], 0
    return out


def main() -> None:
    runs: dict[str, list[float]] = {}
    failures: list[str] = []

    async def measure() -> None:
        cluster = start_cluster(durable=True)
        try:
            i = failed = 0
            while i < RUNS and failed <= 2:
                fig: dict[str, Any] = {}
                try:
                    for n in (1, 2) if i % 2 == 0 else (2, 1):
                        fig.update({f"p{n}_{k}": v for k, v in (await _one(cluster, n)).items()})
                except RunFailed as exc:
                    failed += 1
                    failures.append(str(exc).split(";", 1)[0])
                    print(f"[bench] processes run {i + 1} failed, measured again: {exc}", flush=True)
                    continue
                i += 1
                fig["publish_ratio"] = fig["p2_publish"] / fig["p1_publish"]
                fig["cycle_ratio"] = fig["p2_cycle"] / fig["p1_cycle"]
                for k, v in fig.items():
                    runs.setdefault(k, []).append(v)
                done = ", ".join(f"{k}={v:.3g}" for k, v in fig.items())
                print(f"[bench] processes run {i}/{RUNS}: {done}", flush=True)
        finally:
            remove_cluster(cluster)

    asyncio.run(measure())
    m = {k: median(v) for k, v in runs.items()}
    r = Report(f"serve --processes 1 against 2 on PostgreSQL (median of {RUNS} runs, {os.cpu_count()} cores)")
    for name, label, unit in (
        ("publish", f"Publish, {PUBLISHERS} connections, one message per frame", "msgs/s"),
        ("cycle", "task cycle, 10 workers on Work", "tasks/s"),
    ):
        for n in (1, 2):
            r.add(
                f"{label}, {n} process{'es' if n > 1 else ''}", m[f"p{n}_{name}"], unit,
                target=f"CPU: broker {m[f'p{n}_{name}_broker_cpu']:.0%}, PostgreSQL"
                f" {m[f'p{n}_{name}_pg_cpu']:.0%}, machine {m[f'p{n}_{name}_machine_cpu']:.0%} of one core",
            )  # fmt: skip
        r.add(f"  2 processes / 1, {name}", m[f"{name}_ratio"], "x")
    r.note(
        f"SubmitGraph calls sent again after UNAVAILABLE: {m['p1_submit_retries']:.0f} with 1 process,"
        f" {m['p2_submit_retries']:.0f} with 2 (medians)"
    )
    if failures:
        r.note(f"runs that failed and were measured again: {len(failures)} ({'; '.join(failures)})")
    r.print()


if __name__ == "__main__":
    main()
