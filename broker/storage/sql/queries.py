"""The named statements the shared operations run: what each dialect must provide.

Each dialect writes every statement out in its own style (``sqlite/queries.py``: ``?`` and
``:name``; ``postgres/queries.py``: ``%s`` and ``%(name)s``), as instances of these classes, and
the operations take that set (``Queries``): mypy sees both backends give every statement, and no
statement is rewritten on its way to the driver. The statements differ where the dialects do
(SQLite's ``INDEXED BY`` hints, PostgreSQL's ``FOR UPDATE SKIP LOCKED``, id lists as a JSON value
or an array); a statement's meaning is the same in both (the contract suite, tests/contract, runs
every operation on both).

Filtered lists (ListTasks, ListMessages, ...) are assembled from their filters by the operations,
with the dialect's positional marker (``Queries.param``). The column lists below are the tables'
own, not a dialect's.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...domain.subjects import DELIVERY_SEPARATOR
from ...models.tasks import FINISHED as _FINISHED
from ...models.tasks import TaskStatus

# The final task statuses, as an SQL list: ('completed', 'failed', 'cancelled').
FINISHED = "(" + ", ".join(f"'{s.value}'" for s in TaskStatus if s in _FINISHED) + ")"

MESSAGE_COLUMNS = (
    "seq, message_id, send_id, sender_id, recipient_id, target_kind, target_capability, message_type,"
    " payload, content_type, priority, correlation_id, conversation_id, headers, idempotency_key, status,"
    " attempt, max_attempts, created_at, deliver_after, expires_at, delivered_at, ack_deadline,"
    " processed_at, last_error"
)
# What a send inserts (``message_send.PreparedSends`` makes the rows in this order).
MESSAGE_INSERT_COLUMNS = (
    "message_id, send_id, sender_id, recipient_id, target_kind, target_capability, message_type, payload,"
    " content_type, priority, correlation_id, conversation_id, headers, idempotency_key, max_attempts,"
    " created_at, deliver_after, expires_at"
)
# A subscription's delivery as a message (``d``: subscription_deliveries, ``m``: subject_messages,
# ``s``: subscriptions; ``DELIVERY_FROM``): MESSAGE_COLUMNS' shape, then the subject, the
# subscription's name and the ordering key. Its id is the message's and the subscription's
# (``domain.subjects.delivery_id``).
DELIVERY_COLUMNS = (
    f"d.message_seq, m.message_id || '{DELIVERY_SEPARATOR}' || d.subscription_id, m.message_id,"
    " m.sender_id, d.recipient_id, 'subject', NULL, m.message_type, m.payload, m.content_type,"
    " d.priority, m.correlation_id, m.conversation_id, m.headers, m.idempotency_key, d.status,"
    " d.attempt, d.max_attempts, m.created_at, d.deliver_after, d.expires_at, d.delivered_at,"
    " d.ack_deadline, d.processed_at, d.last_error, m.subject, s.name, m.ordering_key"
)
DELIVERY_FROM = (
    "subscription_deliveries d JOIN subject_messages m ON m.seq = d.message_seq"
    " JOIN subscriptions s ON s.subscription_id = d.subscription_id"
)
# A subject message as sent (no delivery state: status NULL), in the same shape.
SUBJECT_MESSAGE_COLUMNS = (
    "m.seq, m.message_id, m.message_id, m.sender_id, NULL, 'subject', NULL, m.message_type, m.payload,"
    " m.content_type, m.priority, m.correlation_id, m.conversation_id, m.headers, m.idempotency_key,"
    " NULL, 0, 0, m.created_at, m.deliver_after, m.expires_at, NULL, NULL, NULL, NULL, m.subject, NULL,"
    " m.ordering_key"
)
SUBSCRIPTION_COLUMNS = (
    "subscription_id, name, filter, ack_deadline_us, max_attempts, retention_us, ordering,"
    " dead_letter_subject, created_by, created_at"
)


def delivery_returning(attempt: str = "attempt") -> str:
    """What a statement that changes deliveries returns (``subscriptions.delivery_changes``): the
    delivery's id, the attempt it was at (``attempt``: a release that refunds it adds it back),
    its status, subscription, deliver-after time and ordering key."""
    return (
        "(SELECT m.message_id FROM subject_messages m WHERE m.seq = subscription_deliveries.message_seq)"
        f" || '{DELIVERY_SEPARATOR}' || subscription_id, {attempt}, status, subscription_id, deliver_after,"
        " ordering_key"
    )


TASK_INSERT_COLUMNS = (
    "task_id, title, task_type, payload, content_type, required_capabilities, capset_id, concurrency_key,"
    " priority, deadline, urgency, dispatch_rank, parent_id, root_id, level, path,"
    " has_dependents, dep_depth, max_retries,"
    " backoff_initial_us, backoff_multiplier, backoff_max_us, lease_timeout_us, session_id, tags, metadata,"
    " idempotency_key, idempotency_fingerprint, submitted_by, status, created_at, updated_at, traceparent,"
    " max_run_us, labels, not_before"
)
HISTORY_COLUMNS = "task_id, from_status, to_status, reason, actor, attempt, at, error, retryable"
SESSION_COLUMNS = (
    "session_id, name, parent_session_id, created_by, context, labels, status, status_reason,"
    " deadline, max_tasks, summary, created_at, updated_at, closed_at, finished_at"
)
A2A_ENTRY = "task_id, owner, context_id, state, status_at, root_seq, turns, artifacts"
A2A_CONFIG = "task_id, config_id, owner, url, token, auth_scheme, auth_credentials, created_at"
A2A_EVENT = "seq, task_id, config_id, body, attempt, status, next_at, created_at, last_error"


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentQueries:
    fetch: str
    register: str  # insert or update (a re-registration)
    delete_capabilities: str
    insert_capability: str
    heartbeat: str
    deregister: str
    outcomes: str  # the tasks an agent finished since a time: its performance record's input
    liveness_scan: str  # live agents whose last heartbeat is older than a time
    set_heartbeat: str
    set_offline: str
    offline_since: str  # offline agents silent since before a time, by id (the retention)


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskQueries:
    fetch: str
    # dispatch and the sweeper
    next_ready: str  # one capability set's next ready tasks, best first
    expired_leases: str
    timed_out: str
    due_backoff: str
    end_backoff: str
    held_due: str  # pending tasks whose not_before has come, by that time
    holder_running: str
    urgency_window: str
    set_urgency: str
    # capability sets
    insert_capset: str
    capsets_census: str
    capsets: str
    # leases (``Queries.lease`` leases the chosen tasks)
    lease_agent: str
    lease: str  # with ``{}`` where the chosen ids' markers go
    complete: str
    return_lease: str
    extend: str
    last_failure: str  # how an attempt ended: its last transition out of running
    purge: str
    # state changes
    make_ready: str
    retry: str
    fail: str
    depart: str
    cancel: str
    unfinished_below: str
    # dependencies
    resolve_edges: str
    dependents: str
    unfinished_prereqs: str
    prereq: str
    dep_depth: str
    set_dep_depth: str
    insert_edge: str
    delete_edge: str
    mark_has_dependents: str
    touch: str  # updated_at, after an edit of its prerequisites
    prerequisites_of: str  # (prerequisite_id, dep_type, ordinal) in the order given
    deepest_prereq: str
    set_status: str
    # submission
    by_idempotency_key: str
    parent: str
    insert: str  # named parameters: the columns of TASK_INSERT_COLUMNS; returns seq
    insert_tag: str
    insert_label: str
    insert_capability: str
    # reads
    subtree: str
    subtree_counts: str
    subtree_page: str
    subtree_page_depth: str
    exists: str
    path: str
    history: str
    last_transition: str
    of_session: str
    prerequisites: str
    dependent_edges: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionQueries:
    fetch: str
    exists: str
    insert: str
    insert_implicit: str  # a session named by a submission before it was created
    admission: str
    task_total: str
    task_counts: str
    has_unfinished: str
    has_failed: str
    status: str
    end: str
    close: str
    set_summary: str
    unfinished_tasks: str
    cancel: str
    archive: str
    delete_archived: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleQueries:
    insert: str  # named parameters: schedule_id, spec, status, next_fire_at, next_due_at, now
    fetch: str
    exists: str
    due: str  # active schedules due by a time, by due time
    next_due: str  # the earliest due time of an active schedule
    # The claim of a firing: the next firing moves on only if it is still the one read.
    claim: str
    record: str  # what a run did: the last run, the counters, the last refusal
    pause: str
    set_note: str
    resume: str  # active again, with its next firing (or ended, when none is left)
    delete: str
    # A run's submission, undone alone when the broker refuses it (the firing is then recorded).
    savepoint: str
    rollback_to: str
    release: str


@dataclass(frozen=True, slots=True, kw_only=True)
class A2AQueries:
    entry: str
    save_entry: str
    configs_of_task: str
    queue_event: str
    top_root_seq: str
    unindexed: str
    save_config: str
    config: str
    configs_after: str
    delete_config: str
    delete_pending_events: str
    due_heads: str
    lease_event: str
    next_due: str
    settle_delivered: str
    settle_retry: str
    settle_dead: str
    event_counts: str
    events_by_status: str
    purge_events: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CensusQueries:
    by_status_kind: str
    scheduled: str
    agent_backlog: str
    capability_backlog: str
    tasks: str
    agents: str
    size: str  # the database's size in bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenQueries:
    insert: str
    fetch: str
    list: str
    revoke: str
    count_pending: str
    pending_by_sender: str
    # Run in a revocation's transaction: tells the other brokers of the database that tokens
    # changed (PostgreSQL: a NOTIFY, sent at the commit). None: there are no others (SQLite).
    changed: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageQueries:
    # A list of ids (or seqs) as the dialect's statements take one: one JSON value, or an array.
    pack: Callable[[list[Any]], Any]
    # The named parameters that name (message_id, attempt) deliveries in ``release_held``.
    pack_held: Callable[[list[tuple[str, int]]], dict[str, Any]]
    get: str
    due_scheduled: str
    registered: str  # which of a list of agents are registered
    capabilities: str  # which of a list of capabilities a registered agent has
    capable: str  # whether a registered agent has one capability
    purge_sends_of: str
    purge: str
    conversations: str
    conversations_of: str
    conversation_stats: str
    conversation_people: str
    # sends
    prior_send: str
    record_send: str
    broadcast: str
    # claims across an agent's capabilities
    next_direct: str
    next_anycast: str
    claim_seqs: str
    claim_anycast_seqs: str
    # acks, nacks, releases, requeues
    owners: str
    nack: str
    release_held: str
    release_stale: str
    release_agent: str
    statuses: str
    requeue: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SubjectQueries:
    """Topics: subscriptions, subject messages, their deliveries (``sql/subscriptions.py``)."""

    # Deliveries named by (subject message id, subscription) pairs, or with their attempt too, and
    # (subscription, ordering key) pairs, as the named parameters the statements below take.
    pack_deliveries: Callable[[list[tuple[str, int]]], dict[str, Any]]
    pack_held: Callable[[list[tuple[str, int, int]]], dict[str, Any]]
    pack_keys: Callable[[list[tuple[int, str]]], dict[str, Any]]
    pack_replay: Callable[[list[tuple[int, bool]]], dict[str, Any]]  # (seq, blocked) to insert
    pack_seqs: Callable[[list[tuple[int, int]]], dict[str, Any]]  # (subscription, seq) pairs
    # the subject index's version, and every filter
    version: str
    bump_version: str
    filters: str
    # subscriptions
    insert_subscription: str
    subscription: str  # by name
    subscription_name: str  # by id (whether it exists)
    subscriptions_after: str  # a page by name
    unacked_figures: str  # (status, count, min seq) of a subscription's pending and delivered
    dead_count: str
    sent_at: str  # when a subject message was sent, by seq
    delete_deliveries_of: str
    delete_subscription: str
    # sends
    insert_message: str  # named parameters; returns seq
    fan_out: str  # one delivery per subscription of a list
    # claims
    pick: str
    mark_delivered: str
    claimed_rows: str
    # acks, nacks, releases, requeues (``delivery_returning``)
    ack: str
    owners: str  # (message id, subscription, recipient, status) of named deliveries
    nack: str
    release_held: str
    release_stale: str
    release_agent: str
    requeue: str
    unblock: str  # the earliest unfinished delivery of each (subscription, key), claimable
    # sweeps
    release_lapsed: str
    expire: str
    oldest_messages: str  # (seq, created_at) of the oldest subject messages
    purge_deliveries: str
    purge_sends: str
    purge_messages: str
    due_scheduled: str
    dead_to_forward: str
    mark_forwarded: str
    # reads
    delivery: str  # by (subject message id, subscription)
    subject_message: str  # by id
    # seek and replays
    first_seq_at: str  # the first message sent at or after a time
    next_seq: str  # the seq after the last one
    skip_before: str  # unacked before the point and out on streams: processed
    drop_before: str  # pending before the point: dropped
    clear_from: str  # every delivery from the point on (replayed after)
    replay_all: str
    replay_range: str  # subjects in [lo, hi)
    replay_insert: str
    census: str  # the largest backlogs


@dataclass(frozen=True, slots=True, kw_only=True)
class LimitQueries:
    """Concurrency keys and limits (``tasks_fair.py``, ``limits.py``). What differs in how the
    dialects take lists is in the ``args_*`` functions (one JSON value, or arrays)."""

    # The subjects given, as a list parameter; rows (capset, key, rank, created) of key queues
    # to enqueue; (capset, key) pairs; (subject, tokens, refilled_at) buckets.
    pack: Callable[[list[Any]], Any]
    args_enqueue: Callable[[list[tuple[int, str, float, int]], float], dict[str, Any]]
    args_serve: Callable[[list[tuple[int, str]], int, float], dict[str, Any]]
    args_spend: Callable[[list[tuple[str, float, int]], int], dict[str, Any]]
    # dispatch
    heads: str  # a keyed capability set's keys, best standing first (capset, limit, offset)
    key_tasks: str  # one key's next ready tasks (capset, key, limit); arms of a UNION ALL
    lease: str  # as TaskQueries.lease, with each task's holds taken from a map (``{}``: the ids)
    enqueue: str  # tasks became leasable: their key queues' heads, if better
    serve: str  # keys got a turn (or were found stale): their heads again
    usage: str  # subjects' running counts and buckets
    spend: str  # buckets after a lease
    # the limits
    epoch: str
    set_epoch: str
    all: str
    get: str
    upsert: str
    delete: str
    # reads and retention
    key_running: str  # keys with running tasks, most first (prefix pattern, limit)
    key_waiting: str  # keys with leasable tasks, most first (prefix pattern, limit)
    waiting_of: str  # leasable tasks of the keys given
    running_total: str  # running tasks of every key
    waiting_total: str  # leasable tasks of every key
    purge_queues: str
    purge_usage: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Queries:
    """Every statement of one dialect, and its positional parameter marker."""

    param: str  # "?" or "%s"
    agents: AgentQueries
    tasks: TaskQueries
    sessions: SessionQueries
    schedules: ScheduleQueries
    a2a: A2AQueries
    census: CensusQueries
    tokens: TokenQueries
    messages: MessageQueries
    subjects: SubjectQueries
    limits: LimitQueries

    def lease(self, n: int) -> str:
        """The statement that leases ``n`` chosen tasks."""
        return _in_list(self.tasks.lease, self.param, n)

    def lease_holding(self, n: int) -> str:
        """The statement that leases ``n`` chosen tasks, each holding the subjects a map gives."""
        return _in_list(self.limits.lease, self.param, n)

    def key_tasks(self, n: int) -> str:
        """The next ready tasks of ``n`` keys, in one statement."""
        return _union(self.limits.key_tasks, n)

    def history_insert(self, n: int) -> str:
        """One INSERT of ``n`` transitions into the task's history (one statement, not n)."""
        return _history(self.param, n)


@functools.lru_cache(maxsize=256)
def _in_list(template: str, param: str, n: int) -> str:
    return template.format(", ".join([param] * n))


@functools.lru_cache(maxsize=256)
def _union(arm: str, n: int) -> str:
    return " UNION ALL ".join([arm] * n)


@functools.lru_cache(maxsize=256)
def _history(param: str, n: int) -> str:
    row = "(" + ", ".join([param] * len(HISTORY_COLUMNS.split(","))) + ")"
    return f"INSERT INTO task_state_history ({HISTORY_COLUMNS}) VALUES " + ", ".join([row] * n)
