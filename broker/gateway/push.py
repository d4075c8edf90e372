"""Push notifications: each A2A task change POSTed to the webhooks its callers configured.

What is POSTed is queued durably by the tracker (``tracker.py``), in the same transaction as the
index entry it announces; the sender here POSTs each configuration's notifications in order (the
next only once the previous was delivered or given up), from any broker of the database (a lease
of ``LEASE_S`` on each notification while it is being POSTed). A notification that is not answered
with a 2xx is tried again with exponential backoff (``--a2a-push-backoff-s``, 1 s, doubling, at
most 5 minutes), across
restarts, and becomes a dead letter after ``--a2a-push-max-attempts`` (kept for the operator:
metrics and the console show them). The body is a ``StreamResponse`` as JSON (content type
``application/a2a+json``), with the configuration's ``token`` as ``X-A2A-Notification-Token`` and its
authentication as ``Authorization: <scheme> <credentials>``.

Server-side request forgery: a URL whose host resolves to a loopback, private, link-local,
shared, multicast, reserved or unspecified address is refused when the configuration is set and
again before each POST, unless ``--a2a-push-allow`` names that address (CIDRs, or host names).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from ..clock import now_us, s_to_us
from ..config import Settings
from ..models.a2a import PushCounts, PushDelivery
from ..storage.base import Storage

log = logging.getLogger("broker.a2a.push")

LEASE_S = 30.0  # a notification being POSTed is not taken by another broker for this long
TIMEOUT_S = 10.0  # per POST (the specification recommends 10-30 s)
BACKOFF_MAX_S = 300.0
RETAIN_DELIVERED_S = 24 * 3600.0
BATCH = 64  # notifications taken at once (each of another configuration)
CONTENT_TYPE = "application/a2a+json"
SHARED = ipaddress.ip_network("100.64.0.0/10")


class Refused(Exception):
    """A push URL this broker will not call; the message says why."""


class UrlPolicy:
    """Which webhook URLs the broker calls (see the module docstring)."""

    def __init__(self, allow: str) -> None:
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        self.hosts: set[str] = set()
        for item in (x.strip() for x in allow.split(",")):
            if not item:
                continue
            try:
                self.networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                self.hosts.add(item.lower())

    def _allowed(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return any(ip in net for net in self.networks)

    async def check(self, url: str) -> None:
        """Refused unless ``url`` is http(s) and its host resolves only to addresses it may call."""
        try:
            parts = urlsplit(url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise Refused(f"url: not a URL ({exc})") from None
        if parts.scheme not in ("http", "https"):
            raise Refused("url: must be an http:// or https:// URL")
        host = (parts.hostname or "").lower()
        if not host:
            raise Refused("url: has no host")
        if host in self.hosts:
            return
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError:
            raise Refused(f"url: host {host!r} does not resolve") from None
        for info in infos:
            ip = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
            if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
                ip = ip.ipv4_mapped
            if _internal(ip) and not self._allowed(ip):
                raise Refused(
                    f"url: {host!r} resolves to {ip}, a non-public address; the broker calls it only"
                    " when --a2a-push-allow names it"
                )


def _internal(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or (isinstance(ip, ipaddress.IPv4Address) and ip in SHARED)
    )


def backoff_s(first: float, attempt: int) -> float:
    """The wait after the ``attempt``-th failed POST (1-based)."""
    return min(BACKOFF_MAX_S, first * 2 ** (attempt - 1))


class PushStats:
    def __init__(self) -> None:
        self.delivered = 0
        self.failed = 0  # POSTs that failed (each retry counts)
        self.dead = 0
        self.stored = PushCounts()  # as last counted in storage


class PushSender:
    def __init__(self, storage: Storage, settings: Settings, policy: UrlPolicy) -> None:
        self.storage = storage
        self.policy = policy
        self.max_attempts = settings.a2a_push_max_attempts
        self.backoff_first_s = settings.a2a_push_backoff_s
        self.stats = PushStats()
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._posting: set[asyncio.Task[None]] = set()
        self._client = httpx.AsyncClient(timeout=TIMEOUT_S, follow_redirects=False)
        self._last_purge = self._last_count = -1e9

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        # The flag too: Python 3.11's wait_for can swallow a cancellation that races its timeout.
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        for t in list(self._posting):  # a POST cut short is POSTed again (its lease lapses)
            t.cancel()
        await asyncio.gather(*self._posting, return_exceptions=True)
        await self._client.aclose()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopping:
            self._wake.clear()
            try:
                await self._round(loop.time())
                wait = await self._until_due()
            except Exception as exc:  # storage unavailable for a moment: look again shortly
                log.warning("push notifications: %s", exc)
                wait = 1.0
            try:
                await asyncio.wait_for(self._wake.wait(), wait)
            except TimeoutError:
                pass

    async def _round(self, clock: float) -> None:
        due = await self.storage.push_take_due(now_us(), s_to_us(LEASE_S), BATCH)
        for d in due:
            t = asyncio.ensure_future(self._post_logged(d))
            self._posting.add(t)
            t.add_done_callback(self._posting.discard)
        if clock - self._last_count >= 5.0:
            self._last_count = clock
            self.stats.stored = await self.storage.push_counts()
        if clock - self._last_purge >= 60.0:
            self._last_purge = clock
            await self.storage.push_purge(now_us() - s_to_us(RETAIN_DELIVERED_S))

    async def _until_due(self) -> float:
        at = await self.storage.push_next_due()
        if at is None:
            return 5.0
        return min(5.0, max(0.05, (at - now_us()) / 1e6))

    async def _post_logged(self, d: PushDelivery) -> None:
        try:
            await self._post(d)
        except Exception:  # storage unavailable: its lease lapses and it is POSTed again
            log.exception("push notification not settled", extra={"task_id": d.task_id, "seq": d.seq})

    async def _post(self, d: PushDelivery) -> None:
        cfg = await self.storage.push_config_get(d.task_id, d.config_id)
        error: str | None = None
        if cfg is None:
            error = "the configuration was deleted"
        else:
            try:
                await self.policy.check(cfg.url)
                headers = {"Content-Type": CONTENT_TYPE}
                if cfg.token:
                    headers["X-A2A-Notification-Token"] = cfg.token
                if cfg.auth_scheme and cfg.auth_credentials:
                    headers["Authorization"] = f"{cfg.auth_scheme} {cfg.auth_credentials}"
                resp = await self._client.post(cfg.url, content=d.body, headers=headers)
                if not 200 <= resp.status_code < 300:
                    error = f"HTTP {resp.status_code}"
            except Refused as exc:
                error = str(exc)
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        now = now_us()
        if error is None:
            self.stats.delivered += 1
            await self.storage.push_settle(d.seq, now, ok=True)
            self._wake.set()  # the configuration's next notification may be due now
            return
        attempt = d.attempt + 1
        self.stats.failed += 1
        if cfg is None or attempt >= self.max_attempts:
            self.stats.dead += 1
            log.warning(
                "push notification dead-lettered",
                extra={"task_id": d.task_id, "config_id": d.config_id, "attempts": attempt, "error": error},
            )
            await self.storage.push_settle(d.seq, now, ok=False, error=error)
            self._wake.set()
            return
        log.info(
            "push notification failed, will retry",
            extra={"task_id": d.task_id, "config_id": d.config_id, "attempt": attempt, "error": error},
        )
        await self.storage.push_settle(
            d.seq,
            now,
            ok=False,
            retry_at=now + s_to_us(backoff_s(self.backoff_first_s, attempt)),
            error=error,
        )


class PushCollector(Collector):
    """The push notifications in Prometheus (registered in the broker's registry by the server)."""

    def __init__(self, stats: PushStats) -> None:
        self.stats = stats

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        s = self.stats
        posts = CounterMetricFamily(
            "a2a_push_notifications", "A2A push notification POSTs, by outcome", labels=["outcome"]
        )
        posts.add_metric(["delivered"], s.delivered)
        posts.add_metric(["failed"], s.failed)
        posts.add_metric(["dead_lettered"], s.dead)
        yield posts
        stored = GaugeMetricFamily(
            "a2a_push_notifications_stored", "A2A push notifications kept, by status", labels=["status"]
        )
        for status in ("pending", "delivered", "dead"):
            stored.add_metric([status], getattr(s.stored, status))
        yield stored
