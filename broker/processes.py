"""``a2a-broker serve --processes N``: one broker on several cores.

The command becomes a supervisor of N broker processes (``python -m broker.process_main``, the
settings on their stdin). Each is a full broker on the same PostgreSQL database, the cluster of
"Running several brokers on PostgreSQL" on one machine: wake-ups, revocations and streams travel
between them through the relay, sweeps run once across them, and every yes is committed before it
is answered, so a SIGKILL of any one loses nothing acknowledged. They share the gRPC port with
SO_REUSEPORT (the kernel spreads new connections over them); process 0 alone serves the HTTP
listener (console, /metrics for its own RPCs and the shared stored counts, A2A, MCP) and the
federation links, whose ports cannot be shared without splitting what a scrape or a link sees.

Supervision is fail-fast: when a process exits on its own (a crash, a SIGKILL, a failed start),
the supervisor stops the others gracefully and exits 1, for systemd, Kubernetes or `make run`'s
shell to restart the whole; SIGTERM or SIGINT to the supervisor stops every process gracefully
(exit 0); with TLS, SIGHUP is passed on to each (its certificate files reloaded). On Linux each
process also gets SIGTERM should the supervisor die (PR_SET_PDEATHSIG): no orphan holds the port.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
from collections.abc import Callable
from types import FrameType

from .config import Settings

EXIT_PROCESS_DIED = 1
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def process_settings(settings: Settings, index: int) -> Settings:
    """Process ``index``'s settings: the HTTP listener and the federation links in process 0 only."""
    if index == 0:
        return settings
    return settings.model_copy(update={"http_address": "off", "peers": ""})


def _die_with(parent: int) -> Callable[[], None]:
    """A preexec_fn: SIGTERM this process when the supervisor dies (Linux), or exit now if it has."""

    def arm() -> None:
        if sys.platform == "linux":
            import ctypes

            ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:
            os._exit(EXIT_PROCESS_DIED)

    return arm


def _start(settings: Settings, index: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "broker.process_main", str(index)],
        stdin=subprocess.PIPE,
        preexec_fn=_die_with(os.getpid()),  # (safe: no threads run in the supervisor)
    )
    assert proc.stdin is not None
    proc.stdin.write(process_settings(settings, index).model_dump_json().encode())
    proc.stdin.close()
    return proc


def supervise(settings: Settings) -> int:
    """Run ``settings.processes`` brokers until a signal (exit 0) or one exits on its own (exit 1)."""
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    requested: list[int] = []

    procs: list[subprocess.Popen[bytes]] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        requested.append(signum)

    def reload_tls(signum: int, frame: FrameType | None) -> None:  # each process reloads its files
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGHUP)

    previous = {sig: signal.signal(sig, on_signal) for sig in _STOP_SIGNALS}
    if settings.tls_cert:
        previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, reload_tls)
    old_wakeup = signal.set_wakeup_fd(wake_w)
    watched: list[int] = []  # pidfds: readable once their process has exited
    died: tuple[int, int] | None = None
    try:
        for i in range(settings.processes):
            if requested:
                break
            procs.append(_start(settings, i))
            with contextlib.suppress(AttributeError, OSError):  # no pidfd: poll below
                watched.append(os.pidfd_open(procs[-1].pid))  # type: ignore[attr-defined,unused-ignore]
        polling = len(watched) < len(procs)
        while not requested and died is None:
            select.select([wake_r, *watched], [], [], 0.5 if polling else None)
            for i, p in enumerate(procs):
                if p.poll() is not None:
                    died = (i, p.returncode)
                    break
        if died is not None:
            i, code = died
            print(
                f"a2a-broker: process {i} (pid {procs[i].pid}) exited with {code}: stopping the others",
                file=sys.stderr,
                flush=True,
            )
    finally:
        _stop_all(procs, settings.shutdown_grace_s + 10)
        signal.set_wakeup_fd(old_wakeup)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for fd in (wake_r, wake_w, *watched):
            os.close(fd)
    if died is not None or any(p.returncode != 0 for p in procs):
        return EXIT_PROCESS_DIED
    return 0


def _stop_all(procs: list[subprocess.Popen[bytes]], within: float) -> None:
    """SIGTERM to every process still running (a graceful stop each), SIGKILL to any that outlasts
    ``within`` seconds."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(within)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
