"""Isolation benchmark (``python -m bench isolation``): what a flood costs another agent.

A broker with ``--auth token`` and a tight quota (``QUOTA`` calls per second per subject) serves
a victim agent that sends ``RATE`` messages per second, one at a time, and measures each Send's
round trip: first alone, then while a flooder in its own process sends as fast as ``FLOOD_IN_FLIGHT``
calls in flight allow, (a) with its own valid token (over its quota: mostly refused), and (b) with
made-up tokens (unauthenticated: all refused). The figure is the victim's p99 under the flood as a
ratio of its p99 alone: 1.0 would be perfect isolation. Both refusals come before the call costs a
storage read or a place in a write group, so what is left is the CPU of receiving and refusing
the flood's calls (a 2-core machine shares it with the flooder and the victim).

Each phase is measured ``RUNS`` times (the median is printed), against a fresh broker per run.
Not a test: nothing is asserted.

    python -m bench.isolation flood ADDRESS TOKEN SECONDS
        The flooder (a process of its own): Sends from "flood" to "inbox", FLOOD_IN_FLIGHT in
        flight, for SECONDS; TOKEN "made-up" sends a new made-up token on every call. Prints
        "ready" when it starts, then one JSON line {"ok": n, "refused": n}.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path

import grpc

from broker.commands.tokens import open_db
from broker.pb import agents_pb2 as apb
from broker.pb import agents_pb2_grpc, messaging_pb2_grpc
from broker.pb import messaging_pb2 as pb
from broker.security.tokens import new_secret
from broker.storage import token_file as store
from broker.storage.base import TokenRecord

from .common import ROOT, Proc, Report, channel, median, percentile, spawn_broker

RUNS = 3
QUOTA = 100  # calls per second per subject (the flooder's quota; the victim stays within it)
RATE = 50  # the victim's Sends per second
SAMPLES = 300  # the victim's Sends per phase
FLOOD_IN_FLIGHT = 64
PAYLOAD = b"x" * 256


def _issue(db: Path, subject: str, role: str = "agent") -> str:
    token_id, token, secret_hash = new_secret()
    with closing(open_db(str(db))) as conn:
        store.insert_token(conn, TokenRecord(token_id, secret_hash, subject, role, time.time_ns() // 1000))
    return token


def _metadata(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


async def _victim(address: str, token: str) -> list[float]:
    """SAMPLES Sends at RATE per second, one at a time; each round trip in ms."""
    async with channel(address) as ch:
        send = messaging_pb2_grpc.MessagingStub(ch).Send
        req = pb.SendRequest(sender_id="victim", target=pb.Target(agent_id="inbox"), payload=PAYLOAD)
        md = _metadata(token)
        await send(req, metadata=md)  # connect
        out: list[float] = []
        start = time.perf_counter()
        for i in range(SAMPLES):
            await asyncio.sleep(max(0.0, start + i / RATE - time.perf_counter()))
            t0 = time.perf_counter()
            await send(req, metadata=md)
            out.append((time.perf_counter() - t0) * 1000)
        return out


async def _flood(address: str, token: str, seconds: float) -> None:
    counts = {"ok": 0, "refused": 0}
    async with channel(address) as ch:
        send = messaging_pb2_grpc.MessagingStub(ch).Send
        req = pb.SendRequest(sender_id="flood", target=pb.Target(agent_id="inbox"), payload=PAYLOAD)
        deadline = time.monotonic() + seconds
        print("ready", flush=True)

        async def one() -> None:
            while time.monotonic() < deadline:
                t = token if token != "made-up" else f"a2a.{secrets.token_hex(6)}.{secrets.token_urlsafe(32)}"
                try:
                    await send(req, metadata=_metadata(t), timeout=10)
                    counts["ok"] += 1
                except grpc.aio.AioRpcError:
                    counts["refused"] += 1

        await asyncio.gather(*(one() for _ in range(FLOOD_IN_FLIGHT)))
    print(json.dumps(counts), flush=True)


async def _phase(broker: Proc, victim: str, flood: str | None) -> tuple[list[float], dict[str, int], float]:
    """The victim's round trips (ms), the flood's counts, and the broker's CPU seconds meanwhile."""
    address = broker.address
    if flood is None:
        cpu = broker.cpu_s()
        took = await _victim(address, victim)
        return took, {}, broker.cpu_s() - cpu
    seconds = SAMPLES / RATE + 3
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.isolation", "flood", address, flood, str(seconds),
        cwd=ROOT, stdout=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        assert (await asyncio.wait_for(proc.stdout.readline(), 30)).strip() == b"ready"
        await asyncio.sleep(1.0)  # the flood under way
        cpu = broker.cpu_s()
        took = await _victim(address, victim)
        cpu = broker.cpu_s() - cpu
        counts = json.loads(await asyncio.wait_for(proc.stdout.readline(), seconds + 30))
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
    return took, counts, cpu


async def _run(db: Path, broker: Proc) -> dict[str, float]:
    admin, victim, flooder = _issue(db, "ops", "admin"), _issue(db, "victim"), _issue(db, "flood")
    async with channel(broker.address) as ch:
        agents = agents_pb2_grpc.AgentRegistryStub(ch)
        for a in ("victim", "flood", "inbox"):
            await agents.Register(
                apb.RegisterRequest(agent_id=a, max_concurrent_tasks=1), metadata=_metadata(admin)
            )
    out: dict[str, float] = {}
    alone, _, cpu_alone = await _phase(broker, victim, None)
    out["alone_p50"], out["alone_p99"] = percentile(alone, 50), percentile(alone, 99)
    for name, flood in (("quota", flooder), ("unauth", "made-up")):
        took, counts, cpu = await _phase(broker, victim, flood)
        out[f"{name}_p50"], out[f"{name}_p99"] = percentile(took, 50), percentile(took, 99)
        out[f"{name}_ratio"] = out[f"{name}_p99"] / out["alone_p99"]
        total = counts["ok"] + counts["refused"]
        out[f"{name}_calls_per_s"] = total / (SAMPLES / RATE + 3)
        out[f"{name}_refused"] = counts["refused"] / max(1, total)
        # The broker's CPU for the flood (its CPU over the victim's phase, less the victim's own
        # share as measured alone), per flood call in that time.
        flood_calls = out[f"{name}_calls_per_s"] * SAMPLES / RATE
        out[f"{name}_cpu_us"] = max(0.0, cpu - cpu_alone) / max(1.0, flood_calls) * 1e6
    return out


def main() -> None:
    t_start = time.perf_counter()
    runs = []
    for run in range(RUNS):
        with tempfile.TemporaryDirectory() as d:
            db = Path(d) / "a2a.db"
            _issue(db, "warm-up")  # creates and migrates the file before the broker opens it
            with spawn_broker(db, A2A_BROKER_AUTH="token", A2A_BROKER_QUOTA_CALLS_PER_S=str(QUOTA)) as broker:
                r = asyncio.run(_run(db, broker))
        runs.append(r)
        print(
            f"  [isolation] run {run + 1}: victim p99 alone {r['alone_p99']:.2f} ms, under a quota flood"
            f" {r['quota_p99']:.2f} ms ({r['quota_ratio']:.2f}x), under an unauthenticated flood"
            f" {r['unauth_p99']:.2f} ms ({r['unauth_ratio']:.2f}x)",
            flush=True,
        )

    def med(key: str) -> float:
        return median([r[key] for r in runs])

    report = Report(
        f"Isolation (medians of {RUNS} runs; the victim sends {RATE}/s, {SAMPLES} Sends per phase;"
        f" the flooder {FLOOD_IN_FLIGHT} calls in flight, quota {QUOTA} calls/s)"
    )
    report.add("victim alone, p50", med("alone_p50"), "ms")
    report.add("victim alone, p99", med("alone_p99"), "ms")
    for name, what in (("quota", "a flood over its quota"), ("unauth", "an unauthenticated flood")):
        report.add(f"victim under {what}, p50", med(f"{name}_p50"), "ms")
        report.add(f"victim under {what}, p99", med(f"{name}_p99"), "ms")
        report.note(
            f"  isolation: p99 under the flood / p99 alone = {med(f'{name}_ratio'):.2f}x"
            f" (flood: {med(f'{name}_calls_per_s'):,.0f} calls/s, {med(f'{name}_refused'):.0%} refused,"
            f" {med(f'{name}_cpu_us'):,.0f} us of broker CPU per flood call)"
        )
    report.note(f"({time.perf_counter() - t_start:.0f} s)")
    report.print()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "flood":
        asyncio.run(_flood(sys.argv[2], sys.argv[3], float(sys.argv[4])))
    else:
        main()
