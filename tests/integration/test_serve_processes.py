"""``a2a-broker serve --processes N``: N broker processes on one port (SO_REUSEPORT) and one
PostgreSQL database, under a supervisor (broker/processes.py). Real processes, real ports.

Which process serves a connection is read from /proc: the server's end of each TCP connection is a
socket of one process (Linux only, as SO_REUSEPORT's spreading is).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from tests.conftest import ROOT, Stubs, eventually, free_port, stubs_for
from tests.integration import tasks_helpers as th
from tests.integration.messaging_support import Sub, get, register, send

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads sockets and processes from /proc")


def _children(pid: int) -> list[int]:
    try:
        return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _alive(pid: int) -> bool:
    """Running (a zombie, or a process gone, is not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _socket_inodes(pid: int) -> set[str]:
    out = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            out.add(target[8:-1])
    return out


def _server_sockets(port: int, state: str) -> dict[str, int]:
    """inode -> remote port of the TCP sockets bound to local ``port`` in ``state`` (0A: listening,
    01: established)."""
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            if int(f[1].rsplit(":", 1)[1], 16) == port and f[3] == state:
                found[f[9]] = int(f[2].rsplit(":", 1)[1], 16)
    return found


def _owners(pids: list[int], port: int, state: str) -> dict[int, set[int]]:
    """pid -> remote ports of its sockets on local ``port`` in ``state``."""
    sockets = _server_sockets(port, state)
    return {pid: {sockets[i] for i in _socket_inodes(pid) if i in sockets} for pid in pids}


class Supervisor:
    def __init__(self, db: str, processes: int = 2, **env: str) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self._err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "broker", "serve", "--processes", str(processes)],
            env={
                **os.environ,
                "A2A_BROKER_ADDRESS": self.address,
                "A2A_BROKER_DB": db,
                "A2A_BROKER_LOG_FORMAT": "text",
                "A2A_BROKER_SWEEPER_PERIOD_S": "0.05",
                "A2A_BROKER_PG_POLL_INTERVAL_S": "60",  # only a notification wakes a stream in time
                **env,
            },
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=self._err,  # a file, not a pipe nobody reads while the processes log
        )
        self.pids: list[int] = []

    def wait_serving(self, n: int = 2, timeout: float = 30.0) -> list[int]:
        """The children's pids once each of ``n`` listens on the port."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.stderr()
            pids = _children(self.proc.pid)
            listening = _owners(pids, self.port, "0A")
            if len(pids) == n and all(listening.values()):
                self.pids = pids
                return pids
            time.sleep(0.05)
        raise AssertionError(f"{n} processes did not listen within {timeout}s")

    def stderr(self) -> str:
        self._err.seek(0)
        return self._err.read().decode()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        for pid in self.pids:  # should none have stopped with it
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        self._err.close()


@pytest.fixture
def supervisor(pg_url: str) -> Iterator[list[Supervisor]]:
    made: list[Supervisor] = []
    yield made
    for s in made:
        s.stop()


def _start(made: list[Supervisor], db: str, **env: str) -> Supervisor:
    s = Supervisor(db, **env)
    made.append(s)
    s.wait_serving()
    return s


def _gone_within(pids: list[int], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while any(_alive(p) for p in pids):
        assert time.monotonic() < deadline, f"still running: {[p for p in pids if _alive(p)]}"
        time.sleep(0.05)


async def _connections_by_process(s: Supervisor, n: int = 16) -> dict[int, list[Stubs]]:
    """``n`` connections (a channel each), grouped by the process serving each."""
    by_pid: dict[int, list[Stubs]] = {pid: [] for pid in s.pids}
    for i in range(n):
        before = _owners(s.pids, s.port, "01")
        channel = grpc.aio.insecure_channel(s.address, options=[("grpc.use_local_subchannel_pool", 1)])
        stubs = Stubs(channel, *_stubs_on(channel))
        await register(stubs, f"probe-{i}")  # connects it
        after = _owners(s.pids, s.port, "01")
        (pid,) = [p for p in s.pids if after[p] - before[p]]
        by_pid[pid].append(stubs)
    return by_pid


def _stubs_on(channel: grpc.aio.Channel) -> tuple:  # type: ignore[type-arg]
    from broker.pb import agents_pb2_grpc, messaging_pb2_grpc, tasks_pb2_grpc

    return (
        agents_pb2_grpc.AgentRegistryStub(channel),
        messaging_pb2_grpc.MessagingStub(channel),
        tasks_pb2_grpc.TaskQueueStub(channel),
    )


async def _close(by_pid: dict[int, list[Stubs]]) -> None:
    for group in by_pid.values():
        for stubs in group:
            await stubs.channel.close()


async def test_both_processes_serve_and_a_task_submitted_through_one_runs_on_a_worker_of_the_other(
    supervisor: list[Supervisor], pg_url: str
):
    s = _start(supervisor, pg_url)
    by_pid = await _connections_by_process(s)
    try:
        assert all(by_pid.values()), {p: len(c) for p, c in by_pid.items()}  # both take connections
        one, other = (by_pid[p][0] for p in s.pids)
        await th.register(other, "worker")
        waiting = asyncio.ensure_future(th.claim(other, "worker", wait=10.0))
        await asyncio.sleep(0)  # (the claim is sent; the submit below need not wait for it)
        task = await th.submit(one, "across processes")
        (lease,) = await asyncio.wait_for(waiting, 15)
        assert lease.task.task_id == task.task_id
        await th.complete(other, lease, "worker", b"done")
        assert await th.status(one, task.task_id) == "completed"
        # and a message, from a sender on one to a subscriber on the other
        await register(one, "sender")
        await register(other, "reader")
        sub = await Sub.open(other, "reader")
        mid = await send(one, "sender", "reader", b"across")
        assert (await sub.one(timeout=10.0)).message_id == mid
        sub.cancel()
    finally:
        await _close(by_pid)


async def test_sigterm_to_the_supervisor_stops_every_process_and_exits_0(
    supervisor: list[Supervisor], pg_url: str
):
    s = _start(supervisor, pg_url)
    s.proc.send_signal(signal.SIGTERM)
    assert s.proc.wait(30) == 0, s.stderr()
    _gone_within(s.pids)


async def test_a_supervisor_killed_takes_its_processes_with_it(supervisor: list[Supervisor], pg_url: str):
    s = _start(supervisor, pg_url)
    s.proc.kill()
    s.proc.wait(10)
    _gone_within(s.pids)  # no orphan keeps the port


async def test_sigkill_of_one_process_loses_nothing_acknowledged(supervisor: list[Supervisor], pg_url: str):
    s = _start(supervisor, pg_url)
    by_pid = await _connections_by_process(s)
    victim = s.pids[0]
    try:
        (c, *_) = by_pid[victim]
        await register(c, "sender")
        await register(c, "reader")
        await th.register(c, "worker")
        sent: list[str] = []
        submitted: list[str] = []
        killed = asyncio.Event()

        async def keep_writing() -> None:  # until the process is gone under it
            i = 0
            while not killed.is_set():
                try:
                    sent.append(await send(c, "sender", "reader", f"m{i}".encode()))
                    submitted.append((await th.submit(c, f"t{i}")).task_id)
                except grpc.aio.AioRpcError:
                    return
                i += 1

        writer = asyncio.ensure_future(keep_writing())
        await eventually(lambda: _now(len(submitted) >= 20), timeout=20, what="20 acknowledged writes")
        os.kill(victim, signal.SIGKILL)
        killed.set()
        await asyncio.wait_for(writer, 15)
    finally:
        await _close(by_pid)
    # Fail-fast: the supervisor stops the other process and exits 1, naming the one that died.
    assert s.proc.wait(30) == 1
    assert f"pid {victim}) exited with -9" in s.stderr()
    _gone_within(s.pids)

    again = _start(supervisor, pg_url)
    stubs = stubs_for(again.address)
    try:
        for mid in sent:
            assert (await get(stubs, mid)).message_id == mid
        for tid in submitted:
            assert (await th.get(stubs, tid)).task_id == tid
    finally:
        await stubs.channel.close()


async def _now(value: bool) -> bool:
    return value


def test_sqlite_refuses_several_processes(tmp_path: Path):
    r = subprocess.run(
        [sys.executable, "-m", "broker", "serve", "--processes", "2", "--db", str(tmp_path / "b.db"),
         "--address", f"127.0.0.1:{free_port()}"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert "SQLite" in r.stderr and "postgresql://" in r.stderr and "one writer" in r.stderr
    assert not (tmp_path / "b.db").exists()  # refused before anything is opened


def test_several_processes_refuse_a_busy_port(tmp_path: Path, pg_url: str):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = subprocess.run(
            [sys.executable, "-m", "broker", "serve", "--processes", "2", "--db", pg_url,
             "--address", f"127.0.0.1:{port}"],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert r.returncode == 1, r.stderr
    assert "the port is in use" in r.stderr


async def test_sighup_to_the_supervisor_reloads_the_certificates_of_every_process(
    supervisor: list[Supervisor], pg_url: str, tmp_path: Path
):
    from tests.integration.tls_support import CA, write_server_files

    old_ca, new_ca = CA("old"), CA("new")
    files = write_server_files(tmp_path, old_ca)
    s = _start(supervisor, pg_url, A2A_BROKER_TLS_CERT=files["tls_cert"], A2A_BROKER_TLS_KEY=files["tls_key"])
    await eventually(lambda: _both_serve(s, old_ca.pem), timeout=15, what="both processes serving")
    stamps = {n: os.stat(tmp_path / n) for n in ("server.pem", "server.key")}
    write_server_files(tmp_path, new_ca)
    for n, st in stamps.items():  # the old modification times: only the signal can tell
        os.utime(tmp_path / n, ns=(st.st_atime_ns, st.st_mtime_ns))
    s.proc.send_signal(signal.SIGHUP)
    await eventually(lambda: _both_serve(s, new_ca.pem), timeout=15, what="the new certificate on both")
    assert s.proc.poll() is None and all(_alive(p) for p in s.pids)


async def _both_serve(s: Supervisor, ca: bytes) -> bool:
    """Whether a dozen TLS connections trusting ``ca`` all work, and reach both processes."""
    served = set()
    for i in range(12):
        before = _owners(s.pids, s.port, "01")
        channel = grpc.aio.secure_channel(
            s.address, grpc.ssl_channel_credentials(ca), [("grpc.use_local_subchannel_pool", 1)]
        )
        try:
            await register(Stubs(channel, *_stubs_on(channel)), f"tls-{i}")
        except grpc.aio.AioRpcError:
            return False
        finally:
            after = _owners(s.pids, s.port, "01")
            served |= {p for p in s.pids if after[p] - before[p]}
            await channel.close()
    return served == set(s.pids)
