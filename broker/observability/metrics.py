"""The broker's Prometheus metrics: one ``CollectorRegistry`` per broker (several brokers in one
process, as the tests run them, never share a series).

Names follow RabbitMQ's Prometheus plugin (ready, unacked, published, delivered, acknowledged,
redelivered, dead-lettered) and, for RPCs, go-grpc-prometheus (``grpc_server_handling_seconds``),
with the ``a2a_`` prefix. Two kinds of source:

- counters and histograms the broker keeps as it works (``broker.models.stats``: integers the
  mailbox, the task queue and the storage writer increment where they already learn of each
  event), read at scrape time: nothing extra on a hot path;
- gauges of what is stored now (messages by state, backlogs, tasks and agents by status, database
  size), from one read transaction (``Storage.census``) taken at scrape time and kept for
  ``census_ttl_s`` so that frequent scrapes cost one census. Per-agent and per-capability series
  exist only for the ``top_n`` largest backlogs; the rest are summed into one series labelled
  ``_other``, so the number of series is bounded whatever the number of agents.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from ..clock import now_us
from ..models.stats import Hist

if TYPE_CHECKING:
    from ..core.mailbox import Mailbox
    from ..core.taskqueue import TaskQueue
    from ..storage.base import Census, Storage
    from ..storage.subscription_store import SubscriptionFigures

OTHER = "_other"
KINDS = ("direct", "broadcast", "anycast")
TASK_STATUSES = ("blocked", "ready", "running", "completed", "failed", "cancelled")
AGENT_STATUSES = ("available", "busy", "maintenance", "offline")


def _hist(name: str, doc: str, h: Hist) -> HistogramMetricFamily:
    return HistogramMetricFamily(name, doc, buckets=h.cumulative(), sum_value=h.total)


class BrokerCollector(Collector):
    def __init__(self, storage: Storage, mailbox: Mailbox, tasks: TaskQueue, top_n: int) -> None:
        self.storage = storage
        self.mailbox = mailbox
        self.tasks = tasks
        self.top_n = top_n
        self.census: Census | None = None
        self.subscriptions: list[SubscriptionFigures] = []  # the top_n largest backlogs
        self.census_at = 0.0

    async def refresh(self, ttl_s: float) -> None:
        """Take a new census unless the last one is younger than ``ttl_s``."""
        if self.census is None or time.monotonic() - self.census_at >= ttl_s:
            self.census = await self.storage.census(self.top_n, now_us())
            self.subscriptions = await self.storage.subscription_census(self.top_n)
            self.census_at = time.monotonic()

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily]:
        yield from self._counters()
        if self.census is not None:
            yield from self._gauges(self.census)
            yield from self._subscription_gauges(self.subscriptions, now_us())
        st = self.storage.engine_stats
        yield _hist(
            "a2a_storage_commit_seconds", "Write transactions: time to run and commit", st.commit_seconds
        )
        yield _hist("a2a_storage_jobs_per_commit", "Write jobs sharing one commit", st.jobs_per_commit)
        yield GaugeMetricFamily(
            "a2a_storage_write_queue_depth",
            "Write jobs waiting for the writer",
            value=self.storage.write_queue_depth,
        )
        yield CounterMetricFamily(
            "a2a_storage_retried",
            "PostgreSQL: write groups run again after a serialization failure or deadlock",
            value=st.retried,
        )
        notes = CounterMetricFamily(
            "a2a_storage_notifications",
            "PostgreSQL: wake-up notifications to and from other brokers",
            labels=["direction"],
        )
        notes.add_metric(["sent"], st.notifications_sent)
        notes.add_metric(["received"], st.notifications_received)
        yield notes

    def _counters(self) -> Iterator[CounterMetricFamily | HistogramMetricFamily]:
        m = self.mailbox.stats
        for name, doc, value in (
            (
                "a2a_messages_published",
                "Message copies stored (a broadcast counts each recipient)",
                m.published,
            ),
            (
                "a2a_messages_delivered",
                "Deliveries handed to subscribers, redeliveries included",
                m.delivered,
            ),
            ("a2a_messages_redelivered", "Deliveries of a second or later attempt", m.redelivered),
            ("a2a_messages_acknowledged", "Deliveries acknowledged", m.acknowledged),
            ("a2a_messages_expired", "Copies that expired before they were processed", m.expired),
            ("a2a_messages_purged", "Processed and expired copies removed after retention", m.purged),
        ):
            yield CounterMetricFamily(name, doc, value=value)
        dead = CounterMetricFamily(
            "a2a_messages_dead_lettered", "Copies that became dead letters, by reason", labels=["reason"]
        )
        for reason in ("attempts_exhausted", "rejected"):
            dead.add_metric([reason], m.dead_lettered.get(reason, 0))
        yield dead
        t = self.tasks.stats
        for name, doc, value in (
            ("a2a_tasks_submitted", "Tasks submitted", t.submitted),
            ("a2a_tasks_assigned", "Leases handed to agents", t.assigned),
            ("a2a_tasks_completed", "Tasks completed", t.completed),
            ("a2a_tasks_failed", "Tasks failed for good", t.failed),
            ("a2a_tasks_retried", "Attempts ended with the task ready again (retry, agent left)", t.retried),
            ("a2a_tasks_cancelled", "Tasks cancelled", t.cancelled),
            ("a2a_schedule_tasks_submitted", "Tasks submitted by schedules", self.tasks.schedules.fired),
        ):  # fmt: skip
            yield CounterMetricFamily(name, doc, value=value)
        yield _hist("a2a_task_queue_wait_seconds", "From submission to the first assignment", t.queue_wait)
        yield _hist("a2a_task_run_seconds", "From an attempt's assignment to its end", t.run_time)

    def _gauges(self, c: Census) -> Iterator[GaugeMetricFamily]:
        ready = GaugeMetricFamily("a2a_messages_ready", "Pending copies due now", labels=["recipient_kind"])
        unacked = GaugeMetricFamily(
            "a2a_messages_unacked", "Copies delivered and not yet acknowledged", labels=["recipient_kind"]
        )
        scheduled = GaugeMetricFamily(
            "a2a_messages_scheduled", "Pending copies not due yet", labels=["recipient_kind"]
        )
        dead = GaugeMetricFamily("a2a_messages_dead_letters", "Dead letters kept", labels=["recipient_kind"])
        for kind in KINDS:
            later = c.scheduled.get(kind, 0)
            ready.add_metric([kind], c.messages.get(("pending", kind), 0) - later)
            scheduled.add_metric([kind], later)
            unacked.add_metric([kind], c.messages.get(("delivered", kind), 0))
            dead.add_metric([kind], c.messages.get(("failed", kind), 0))
        yield from (ready, unacked, scheduled, dead)
        per_agent = GaugeMetricFamily(
            "a2a_agent_messages_pending",
            f"Pending copies held for an agent: the {self.top_n} largest backlogs, the rest as {OTHER}",
            labels=["agent_id"],
        )
        for agent_id, n in c.agent_backlog:
            per_agent.add_metric([agent_id], n)
        per_agent.add_metric([OTHER], c.agent_backlog_rest)
        yield per_agent
        per_cap = GaugeMetricFamily(
            "a2a_capability_messages_pending",
            f"Pending anycast copies by capability: the {self.top_n} largest, the rest as {OTHER}",
            labels=["capability"],
        )
        for cap, n in c.capability_backlog:
            per_cap.add_metric([cap], n)
        per_cap.add_metric([OTHER], c.capability_backlog_rest)
        yield per_cap
        yield from self._keys(c)
        tasks = GaugeMetricFamily("a2a_tasks", "Tasks by status", labels=["status"])
        for status in TASK_STATUSES:
            tasks.add_metric([status], c.tasks.get(status, 0))
        yield tasks
        agents = GaugeMetricFamily("a2a_agents", "Registered agents by status", labels=["status"])
        for status in AGENT_STATUSES:
            agents.add_metric([status], c.agents.get(status, 0))
        yield agents
        if c.size_bytes is not None:
            yield GaugeMetricFamily("a2a_storage_size_bytes", "Size of the database", value=c.size_bytes)

    def _subscription_gauges(self, subs: list[SubscriptionFigures], now: int) -> Iterator[GaugeMetricFamily]:
        """Per subscription to subjects, for the ``top_n`` largest backlogs only (no ``_other``:
        the census reads no more than those)."""
        top = f"the {self.top_n} largest backlogs"
        pending = GaugeMetricFamily(
            "a2a_subscription_messages_pending",
            f"Deliveries waiting in a subscription: {top}",
            labels=["subscription"],
        )
        unacked = GaugeMetricFamily(
            "a2a_subscription_messages_unacked",
            f"Deliveries of a subscription not yet acknowledged (waiting or out): {top}",
            labels=["subscription"],
        )
        age = GaugeMetricFamily(
            "a2a_subscription_oldest_unacked_age_seconds",
            f"Age of the oldest message not yet acknowledged in a subscription: {top}",
            labels=["subscription"],
        )
        for f in subs:
            pending.add_metric([f.name], f.pending)
            unacked.add_metric([f.name], f.unacked)
            if f.oldest_unacked_at is not None:
                age.add_metric([f.name], max(0, now - f.oldest_unacked_at) / 1e6)
        yield from (pending, unacked, age)

    def _keys(self, c: Census) -> Iterator[GaugeMetricFamily]:
        """Concurrency keys: running and waiting (leasable) tasks, the top N keys each."""
        for name, what, top, total in (
            ("a2a_concurrency_key_tasks_running", "Running tasks", c.key_running, c.key_running_total),
            ("a2a_concurrency_key_tasks_waiting", "Ready tasks waiting", c.key_waiting, c.key_waiting_total),
        ):
            doc = f"{what} by concurrency key: the {self.top_n} largest, the rest as {OTHER}"
            family = GaugeMetricFamily(name, doc, labels=["key"])
            for key, n in top:
                family.add_metric([key], n)
            family.add_metric([OTHER], total - sum(n for _, n in top))
            yield family


class Metrics:
    """The registry of one broker, and the instruments the RPC interceptor updates."""

    def __init__(self, storage: Storage, mailbox: Mailbox, tasks: TaskQueue, top_n: int) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.collector = BrokerCollector(storage, mailbox, tasks, top_n)
        self.registry.register(self.collector)
        self.rpc_seconds = Histogram(
            "grpc_server_handling_seconds",
            "RPC duration until the status was sent (a stream: its whole life), by method and status code",
            ["grpc_service", "grpc_method", "grpc_code"],
            registry=self.registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60, 600),
        )
        self.open_streams = Gauge(
            "a2a_open_streams", "Streams open now, by method", ["grpc_method"], registry=self.registry
        )
