"""Messaging benchmark (``make bench``; ``python -m bench messaging``).

Each run starts a fresh broker (its own process, SQLite file, synchronous=FULL: every answered
Send is on disk) and the bare gRPC echo server (bench/echo.py, which serves the same Messaging API
from memory), and drives both with the same client code:

- publish: ``Send`` with 64 calls in flight; a ``Publish`` stream (one message per frame, each
  confirmed after commit, the broker's window respected); ``SendBatch`` with batches of 100 (4 in
  flight); 256-byte payloads throughout, as peers are measured;
- drain: a subscriber takes a backlog of 20,000 and acks it (``Ack`` with each response's ids),
  and the same over ``Consume`` with the acks on the stream;
- end-to-end latency at 1,000 msgs/s: publish time (in the payload) to receive time, p50 and
  p99, published one per frame on a Publish stream, the subscriber in its own process
  (bench/peer.py, Consume with acks on the stream), and the broker's CPU per message for the
  whole of it (publish, deliver, ack);
- the cost of security: Send and drain with ``--auth token`` against ``--auth none``, back to back;
- the cost of metrics: Send and drain with the HTTP listener on (the RPC interceptor installed,
  ``/metrics`` scraped every second) against off, back to back;
- the cost of tracing: the same with ``--tracing on`` (the OpenTelemetry SDK recording every span,
  exported nowhere: ``OTEL_TRACES_EXPORTER=none``) against off.

Figures are medians of 3 runs, each also given as a ratio of the echo server's figure in the same
run. ``BENCH_BIG=1`` adds a 1,000,000-message backlog drain with the broker's peak memory.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from broker.pb import agents_pb2 as apb
from broker.pb import agents_pb2_grpc, messaging_pb2_grpc
from broker.pb import messaging_pb2 as pb

from .common import (
    Proc,
    Report,
    channel,
    echo_baseline,
    free_port,
    median,
    spawn_broker,
    spawn_echo,
    start_peer,
    unary_rate,
)
from .peer import stamp

RUNS = 3
PAYLOAD = b"x" * 256  # as peers are measured
SEND_CALLS = 6000
SEND_IN_FLIGHT = 64
BATCH = 100
BATCH_MESSAGES = 100_000
BATCH_IN_FLIGHT = 4
DRAIN = 20_000
DRAIN_IN_FLIGHT = 2000
DRAIN_BATCH = 500
E2E_RATE = 1000
E2E_SECONDS = 3.0
E2E_WARMUP = 300
BIG = 1_000_000

AGENTS = [
    "bench-sender",
    "sink-send",
    "sink-publish",
    "sink-batch",
    "sink-drain",
    "sink-consume",
    "sink-e2e",
    "sink-big",
]
PUBLISH_MESSAGES = 20_000


def _req(to: str, payload: bytes = PAYLOAD) -> pb.SendRequest:
    return pb.SendRequest(sender_id="bench-sender", target=pb.Target(agent_id=to), payload=payload)


def issue_tokens(db: Path) -> dict[str, str]:
    """An agent token for each bench agent, written on the database before the broker starts."""
    from contextlib import closing

    from broker.commands.tokens import open_db
    from broker.security.tokens import new_secret
    from broker.storage import token_file as store
    from broker.storage.base import TokenRecord

    out = {}
    with closing(open_db(str(db))) as conn:
        for a in AGENTS:
            token_id, token, digest = new_secret()
            store.insert_token(conn, TokenRecord(token_id, digest, a, "agent", time.time_ns() // 1000))
            out[a] = token
    return out


class Client:
    def __init__(self, address: str, broker: bool, tokens: dict[str, str] | None = None) -> None:
        self.address = address
        self.ch = channel(address)
        self.msg = messaging_pb2_grpc.MessagingStub(self.ch)
        self.agents = agents_pb2_grpc.AgentRegistryStub(self.ch)
        self.broker = broker
        self._beat: asyncio.Future[None] | None = None
        # --auth token: each agent's calls carry its own token (None: no metadata at all).
        self._md = {a: (("authorization", f"Bearer {t}"),) for a, t in (tokens or {}).items()}

    def md(self, agent: str) -> Any:
        return self._md.get(agent)

    async def setup(self) -> None:
        if self.broker:
            for a in AGENTS:
                await self.agents.Register(
                    apb.RegisterRequest(agent_id=a, max_concurrent_tasks=1), metadata=self.md(a)
                )
            self._beat = asyncio.ensure_future(self._heartbeats())

    async def _heartbeats(self) -> None:
        # Agents that stop heartbeating go offline and lose their streams (a long run needs this).
        while True:
            await asyncio.sleep(5)
            for a in AGENTS:
                await self.agents.Heartbeat(apb.HeartbeatRequest(agent_id=a), metadata=self.md(a))

    async def close(self) -> None:
        if self._beat is not None:
            self._beat.cancel()
        await self.ch.close()

    async def send_rate(self) -> float:
        req = _req("sink-send")
        md = self.md("bench-sender")
        await self.msg.Send(req, metadata=md)
        return await unary_rate(lambda: self.msg.Send(req, metadata=md), SEND_CALLS, SEND_IN_FLIGHT)

    async def publish_rate(self, n: int = PUBLISH_MESSAGES, batched: bool = False) -> float:
        """One Publish stream, each message confirmed after commit, the broker's window respected;
        messages/s. One message per frame, or ``batched``: as the client library sends, whatever
        the window lets through at each turn in one request (PublishRequest.messages)."""
        call = self.msg.Publish(metadata=self.md("bench-sender"))
        headers = dict(await call.initial_metadata() or ())
        room = asyncio.Semaphore(int(headers.get("a2a-publish-window", "1000")))
        req = _req("sink-publish")
        t0 = time.perf_counter()

        async def write() -> None:
            i = seq = 0
            while i < n:
                await room.acquire()
                k = 1
                while batched and i + k < n and not room.locked():
                    await room.acquire()  # free: no wait
                    k += 1
                seq += 1
                if k == 1:
                    await call.write(pb.PublishRequest(sequence=seq, message=req))
                else:
                    await call.write(pb.PublishRequest(sequence=seq, messages=[req] * k))
                i += k
            await call.done_writing()

        writer = asyncio.ensure_future(write())
        confirmed = 0
        async for r in call:
            assert r.code == 0, r.error
            for x in r.results if r.results else (r,):
                assert x.code == 0, x.error
                room.release()
                confirmed += 1
        await writer
        assert confirmed == n
        return n / (time.perf_counter() - t0)

    async def batch_rate(
        self, to: str = "sink-batch", total: int = BATCH_MESSAGES, size: int = BATCH
    ) -> float:
        req = pb.SendBatchRequest(messages=[_req(to)] * size)
        md = self.md("bench-sender")
        return size * await unary_rate(
            lambda: self.msg.SendBatch(req, metadata=md), total // size, BATCH_IN_FLIGHT
        )

    async def drain_rate(self, agent: str, n: int, sample: Any = None) -> float:
        """Subscribe and ack until ``n`` messages are acked; messages/s."""
        md = self.md(agent)
        call = self.msg.Subscribe(
            pb.SubscribeRequest(agent_id=agent, max_in_flight=DRAIN_IN_FLIGHT, max_batch=DRAIN_BATCH),
            metadata=md,
        )
        acked = 0
        done = asyncio.Event()
        acks: set[asyncio.Task[None]] = set()

        async def ack(ids: list[str]) -> None:
            nonlocal acked
            await self.msg.Ack(pb.AckRequest(agent_id=agent, message_ids=ids), metadata=md)
            acked += len(ids)
            if acked >= n:
                done.set()

        t0 = time.perf_counter()
        received = 0
        async for resp in call:
            ids = [m.message_id for m in resp.messages]
            received += len(ids)
            t = asyncio.ensure_future(ack(ids))
            acks.add(t)
            t.add_done_callback(acks.discard)
            if sample is not None:
                sample()
            if received >= n:
                break
        await asyncio.wait_for(done.wait(), 60)
        elapsed = time.perf_counter() - t0
        call.cancel()
        return n / elapsed

    async def consume_rate(self, agent: str, n: int, no_confirm: bool = False) -> float:
        """Consume and ack on the same stream (one ack request per delivery response) until ``n``
        acks are confirmed; messages/s. ``no_confirm``: the acks ask for no confirmation, but
        the last one, whose confirmation says they are all committed."""
        call = self.msg.Consume(metadata=self.md(agent))
        await call.write(
            pb.ConsumeRequest(
                subscribe=pb.SubscribeRequest(
                    agent_id=agent, max_in_flight=DRAIN_IN_FLIGHT, max_batch=DRAIN_BATCH
                )
            )
        )
        t0 = time.perf_counter()
        acked = seq = received = 0
        async for resp in call:
            if resp.messages:
                seq += 1
                received += len(resp.messages)
                quiet = no_confirm and received < n
                await call.write(
                    pb.ConsumeRequest(
                        sequence=seq, ack_ids=[m.message_id for m in resp.messages], no_confirm=quiet
                    )
                )
            if resp.HasField("confirm"):
                assert resp.confirm.code == 0, resp.confirm.error
                acked += resp.confirm.acked
                if acked >= n or (no_confirm and received >= n):
                    break
        elapsed = time.perf_counter() - t0
        call.cancel()
        return n / elapsed

    async def e2e_latency(
        self, sender: Client | None = None, no_confirm: bool = False
    ) -> tuple[float, float]:
        """p50, p99 in ms of publish -> receive at E2E_RATE msgs/s: the messages go out one per
        frame on a Publish stream (as the client library sends), the subscriber is in its own
        process (bench/peer.py: Consume, acks on the stream), the send time rides in the
        payload. They are published through ``sender``'s broker (another broker on the same
        database), or this one's."""
        figures = await self.e2e_figures(sender, no_confirm=no_confirm)
        return figures["p50"], figures["p99"]

    async def e2e_figures(
        self,
        sender: Client | None = None,
        seconds: float = E2E_SECONDS,
        window_s: float = 0.0,
        no_confirm: bool = False,
    ) -> dict[str, float]:
        """``e2e_latency`` for ``seconds``; with ``window_s``, also the p50 of the first and of
        the last ``window_s`` seconds (``first_p50``, ``last_p50``: does latency hold?);
        ``no_confirm``: the subscriber's acks ask for no confirmation frame."""
        agent = "sink-e2e"
        total = int(E2E_RATE * seconds) + E2E_WARMUP
        extra = ("no-confirm",) if no_confirm else ()
        args = (str(total), str(E2E_WARMUP), str(window_s), *extra)
        peer = await start_peer("subscriber", self.address, agent, *args)
        call = (sender or self).msg.Publish(metadata=self.md("bench-sender"))
        try:
            await call.initial_metadata()

            async def confirms() -> None:
                async for r in call:
                    assert r.code == 0, r.error

            reader = asyncio.ensure_future(confirms())
            loop = asyncio.get_running_loop()
            start = loop.time() + 0.05
            for i in range(total):
                delay = start + i / E2E_RATE - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                await call.write(pb.PublishRequest(sequence=i + 1, message=_req(agent, stamp(PAYLOAD))))
            assert peer.stdout is not None
            line = await asyncio.wait_for(peer.stdout.readline(), 30)
            await call.done_writing()
            await asyncio.wait_for(reader, 30)
            figures: dict[str, float] = json.loads(line)
            return figures
        finally:
            call.cancel()
            if peer.returncode is None:
                peer.kill()
            await peer.wait()


async def _preload(c: Client, agent: str, n: int) -> float:
    return await c.batch_rate(to=agent, total=n, size=1000)


PHASES = ("send", "publish", "publish_batched", "batch", "drain", "consume", "consume_nc", "e2e", "e2e_nc")
RATIO_KEYS = (
    "send",
    "publish",
    "publish_batched",
    "batch",
    "drain",
    "consume",
    "consume_nc",
    "p50",
    "p99",
    "p50_nc",
    "p99_nc",
)
# The batched forms (issue 27): measured against the broker only; their ratios are to the bare
# echo's single form (one message per frame), which is what gRPC allows.
BROKER_ONLY = {"publish_batched": "publish", "consume_nc": "consume", "e2e_nc": "e2e"}


async def _phase(c: Client, proc: Proc, phase: str, out: dict[str, float]) -> None:
    """One figure into ``out``; ``<phase>_cpu_us``: the server's CPU (all threads) per message."""
    if phase in ("drain", "consume", "consume_nc"):
        await _preload(c, f"sink-{phase.split('_')[0]}", DRAIN)
    n = {
        "send": SEND_CALLS,
        "publish": PUBLISH_MESSAGES,
        "publish_batched": PUBLISH_MESSAGES,
        "batch": BATCH_MESSAGES,
        "drain": DRAIN,
        "consume": DRAIN,
        "consume_nc": DRAIN,
    }.get(phase, int(E2E_RATE * E2E_SECONDS) + E2E_WARMUP)
    cpu = proc.cpu_s()
    if phase == "send":
        out["send"] = await c.send_rate()
    elif phase == "publish":
        out["publish"] = await c.publish_rate()
    elif phase == "publish_batched":
        out["publish_batched"] = await c.publish_rate(batched=True)
    elif phase == "consume_nc":
        out["consume_nc"] = await c.consume_rate("sink-consume", DRAIN, no_confirm=True)
    elif phase == "e2e_nc":
        out["p50_nc"], out["p99_nc"] = await c.e2e_latency(no_confirm=True)
    elif phase == "batch":
        out["batch"] = await c.batch_rate()
    elif phase == "drain":
        out["drain"] = await c.drain_rate("sink-drain", DRAIN)
    elif phase == "consume":
        out["consume"] = await c.consume_rate("sink-consume", DRAIN)
    else:
        out["p50"], out["p99"] = await c.e2e_latency()
    out[phase + "_cpu_us"] = (proc.cpu_s() - cpu) / n * 1e6


async def run_pair(echo: Proc, broker: Proc) -> tuple[dict[str, float], dict[str, float]]:
    """Every figure once against the echo server, then at once against the broker: on a machine
    shared with other work, the two halves of each ratio are measured seconds apart."""
    ce, cb = Client(echo.address, False), Client(broker.address, True)
    e: dict[str, float] = {}
    b: dict[str, float] = {}
    try:
        await ce.setup()
        await cb.setup()
        for phase in PHASES:
            if phase not in BROKER_ONLY:
                await _phase(ce, echo, phase, e)
            await _phase(cb, broker, phase, b)
        for phase, single in BROKER_ONLY.items():
            e[phase + "_cpu_us"] = e[single + "_cpu_us"]
        for key, single in (("publish_batched", "publish"), ("consume_nc", "consume")):
            e[key] = e[single]
        e["p50_nc"], e["p99_nc"] = e["p50"], e["p99"]
        return e, b
    finally:
        await ce.close()
        await cb.close()


AB_PHASES = ("send", "drain")


async def _scrape_every(port: int, period_s: float) -> None:
    """GET /metrics every ``period_s`` (a Prometheus scraping 15 times more often than usual)."""
    async with aiohttp.ClientSession() as s:
        while True:
            async with s.get(f"http://127.0.0.1:{port}/metrics") as r:
                await r.read()
            await asyncio.sleep(period_s)


async def run_ab(tmp: Path, i: int, name: str, variants: dict[str, dict[str, str]]) -> dict[str, float]:
    """Send and drain against two brokers differing only by ``variants`` (label -> environment),
    back to back; ``<phase>_<label>`` figures and ``<phase>_<name>_ratio`` (second / first). The
    calls-per-second quota is off in both. The order alternates from run to run, so that neither
    side always runs on a warmer machine.

    - auth: ``--auth token`` against ``--auth none`` (each agent's calls carry its own token);
    - metrics: the HTTP listener on (the RPC interceptor installed, /metrics scraped every second)
      against off;
    - tracing: --tracing on with the SDK and no exporter against off."""
    out: dict[str, float] = {}
    labels = list(variants)
    for label in labels if i % 2 == 0 else labels[::-1]:
        db = Path(tmp) / f"{name}-{label}-{i}.db"
        env = dict(variants[label])
        tokens = issue_tokens(db) if env.get("A2A_BROKER_AUTH") == "token" else None
        port = free_port()
        if env.get("A2A_BROKER_HTTP_ADDRESS") == "on":
            env["A2A_BROKER_HTTP_ADDRESS"] = f"127.0.0.1:{port}"
        with spawn_broker(db, A2A_BROKER_QUOTA_CALLS_PER_S="0", **env) as proc:
            c = Client(proc.address, True, tokens)
            scraper = None
            if env.get("A2A_BROKER_HTTP_ADDRESS", "").endswith(f":{port}"):
                scraper = asyncio.ensure_future(_scrape_every(port, 1.0))
            fig: dict[str, float] = {}
            try:
                await c.setup()
                for phase in AB_PHASES:
                    await _phase(c, proc, phase, fig)
            finally:
                if scraper is not None:
                    scraper.cancel()
                await c.close()
        for k in AB_PHASES:
            out[f"{k}_{label}"] = fig[k]
    for k in AB_PHASES:
        out[f"{k}_{name}_ratio"] = out[f"{k}_{labels[1]}"] / out[f"{k}_{labels[0]}"]
    return out


AUTH = {"none": {"A2A_BROKER_AUTH": "none"}, "token": {"A2A_BROKER_AUTH": "token"}}
METRICS = {"off": {"A2A_BROKER_HTTP_ADDRESS": "off"}, "on": {"A2A_BROKER_HTTP_ADDRESS": "on"}}
TRACING = {
    "off": {"A2A_BROKER_TRACING": "off"},
    "on": {"A2A_BROKER_TRACING": "on", "OTEL_TRACES_EXPORTER": "none"},
}


async def run_big(proc: Proc) -> dict[str, float]:
    c = Client(proc.address, True)
    try:
        await c.setup()
        t0 = time.perf_counter()
        await _preload(c, "sink-big", BIG)
        preload_s = time.perf_counter() - t0
        rss: list[float] = []
        rate = await c.drain_rate("sink-big", BIG, sample=lambda: rss.append(proc.rss_mb()))
        return {
            "preload_per_s": BIG / preload_s,
            "drain": rate,
            "rss_max": max(rss),
            "peak": proc.peak_rss_mb(),
        }
    finally:
        await c.close()


def main() -> None:
    results: dict[str, list[float]] = {}
    echo_results: dict[str, list[float]] = {}
    base: dict[str, list[float]] = {}
    ratios: dict[str, list[float]] = {}  # broker / echo, per run
    auth: dict[str, list[float]] = {}  # --auth token vs --auth none, per run
    observed: dict[str, list[float]] = {}  # metrics on vs off, per run
    traced: dict[str, list[float]] = {}  # tracing on vs off, per run

    def keep(into: dict[str, list[float]], fig: dict[str, float]) -> None:
        for k, v in fig.items():
            into.setdefault(k, []).append(v)

    async def measure() -> dict[str, float] | None:
        # One event loop for the whole suite: grpc.aio's poller stays bound to the first loop it
        # saw, and a second asyncio.run() leaves it calling into a closed one.
        t_start = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="bench-messaging-") as tmp:
            for i in range(RUNS):
                with spawn_echo() as echo, spawn_broker(Path(tmp) / f"run{i}.db") as proc:
                    keep(base, await echo_baseline(echo.address))
                    e_fig, b_fig = await run_pair(echo, proc)
                    keep(echo_results, e_fig)
                    keep(results, b_fig)
                    keep(
                        ratios,
                        {k: b_fig[k] / e_fig[k] for k in RATIO_KEYS},
                    )
                keep(auth, await run_ab(Path(tmp), i, "auth", AUTH))
                keep(observed, await run_ab(Path(tmp), i, "metrics", METRICS))
                keep(traced, await run_ab(Path(tmp), i, "tracing", TRACING))
                print(
                    f"[bench] messaging run {i + 1}/{RUNS} done ({time.perf_counter() - t_start:.0f} s)",
                    flush=True,
                )
            if os.environ.get("BENCH_BIG"):
                with spawn_broker(Path(tmp) / "big.db") as proc:
                    return await run_big(proc)
        return None

    big = asyncio.run(measure())

    m = {k: median(v) for k, v in results.items()}
    e = {k: median(v) for k, v in echo_results.items()}
    b = {k: median(v) for k, v in base.items()}
    r = Report(f"messaging (median of {RUNS} runs; broker with synchronous=FULL; payload {len(PAYLOAD)} B)")
    r.note(
        f"bare grpc.aio here: unary echo {b['unary_per_s']:,.0f} calls/s with {SEND_IN_FLIGHT} in flight,"
        f" {b['round_trip_ms']:.2f} ms one in flight; server stream {b['stream_per_s']:,.0f} msgs/s"
        " one per frame"
    )
    q = {k: median(v) for k, v in ratios.items()}
    r.add(
        f"Send, {SEND_IN_FLIGHT} in flight",
        m["send"],
        "msgs/s",
        None,
        ">= 80% of bare gRPC",
        False,
        q["send"],
    )
    r.add(
        "Publish stream, one message per frame, confirmed after commit",
        m["publish"],
        "msgs/s",
        None,
        ">= 85% of the bare stream",
        False,
        q["publish"],
    )
    r.add(
        "Publish stream, batched as ready (PublishRequest.messages), confirmed after commit",
        m["publish_batched"],
        "msgs/s",
        None,
        ">= 8,000 msgs/s",
        False,
        q["publish_batched"],
    )
    r.add(
        f"SendBatch, batches of {BATCH}, {BATCH_IN_FLIGHT} in flight",
        m["batch"],
        "msgs/s",
        None,
        ">= 40,000 msgs/s",
        False,
        q["batch"],
    )
    r.add(
        f"drain {DRAIN:,} (Subscribe + Ack)",
        m["drain"],
        "msgs/s",
        None,
        ">= 30,000 msgs/s",
        False,
        q["drain"],
    )
    r.add(
        f"drain {DRAIN:,} (Consume: acks on the stream)",
        m["consume"],
        "msgs/s",
        None,
        ">= 40,000 msgs/s",
        False,
        q["consume"],
    )
    r.add(
        f"drain {DRAIN:,} (Consume: acks with no_confirm)",
        m["consume_nc"],
        "msgs/s",
        None,
        ">= 40,000 msgs/s",
        False,
        q["consume_nc"],
    )
    r.add(
        f"end-to-end p50 at {E2E_RATE}/s, subscriber in its own process",
        m["p50"],
        "ms",
        None,
        "<= 1 ms",
        True,
        q["p50"],
    )
    r.add(f"end-to-end p99 at {E2E_RATE}/s", m["p99"], "ms", None, "<= 2.5 ms", True, q["p99"])
    r.add(
        f"end-to-end p50 / p99 at {E2E_RATE}/s, acks with no_confirm",
        m["p50_nc"],
        "ms",
        None,
        "<= 1.5 ms",
        True,
        q["p50_nc"],
    )
    r.add("end-to-end p99, acks with no_confirm", m["p99_nc"], "ms", None, "<= 5 ms", True, q["p99_nc"])
    r.add(
        "broker CPU per message end to end (publish, deliver, ack)", m["e2e_cpu_us"], "us", None, "<= 150 us"
    )
    r.note(
        "bare gRPC (the echo server, same client): "
        + ", ".join(f"{k} {e[k]:,.2f}" for k in RATIO_KEYS)
        + "; ratios are medians of the per-run ratios"
    )
    r.note(f"Send vs the generic bytes unary echo: {m['send'] / b['unary_per_s']:.0%}")
    for title, name, (base_label, label), runs in (
        ("--auth token vs --auth none (issue 11: >= 90%)", "auth", ("none", "token"), auth),
        ("metrics on (scraped every second) vs off (issue 12: >= 95%)", "metrics", ("off", "on"), observed),
        ("tracing on (SDK, no exporter) vs off (issue 12: >= 85%)", "tracing", ("off", "on"), traced),
    ):
        a = {k: median(v) for k, v in runs.items()}
        r.note(
            f"{title}: "
            + ", ".join(
                f"{k} {a[f'{k}_{label}']:,.0f} vs {a[f'{k}_{base_label}']:,.0f} msgs/s"
                f" ({a[f'{k}_{name}_ratio']:.0%})"
                for k in AB_PHASES
            )
        )
    r.note(
        "server CPU per message (all threads; broker vs echo): "
        + ", ".join(f"{k} {m[k + '_cpu_us']:.0f} vs {e[k + '_cpu_us']:.0f} us" for k in PHASES)
    )
    r.note(
        "each run: "
        + "; ".join(
            f"{k} " + ", ".join(f"{x:,.2f}" for x in v)
            for k, v in results.items()
            if not k.endswith("_cpu_us")
        )
    )
    if big is not None:
        r.add(f"drain {BIG:,} backlog", big["drain"], "msgs/s", None, f">= 80% of the {DRAIN:,} drain")
        r.note(
            f"  = {big['drain'] / m['drain']:.0%} of the {DRAIN:,} drain; broker RSS while draining "
            f"<= {big['rss_max']:.0f} MiB, peak {big['peak']:.0f} MiB (target < 500 MB); "
            f"preload {big['preload_per_s']:,.0f} msgs/s"
        )
    else:
        r.note(f"(BENCH_BIG=1 adds the {BIG:,}-message backlog drain)")
    r.print()
