"""The whole authorization policy: one table of RPC x role x ownership rule.

Read it row by row: who may call the RPC at all (``roles``), and which request fields name the
agent the caller acts as (``own``). A caller other than an admin must own every such field (its
token's subject is that agent id, or a prefix of it ending in ``*``):

* ``"agent_id"``: the field must name the caller;
* ``"messages[].sender_id"``: so must that field of every item of a repeated field;
* ``"sender_id|recipient_id"``: at least one of the fields must name the caller;
* ``scoped="conversation_id"``: failing that, a request naming a conversation (and no other
  agent in those fields) is served, and shows the caller only the messages it sent or received
  there (the service layer's filter, ``identity.reader_scope``): being in a conversation, or
  having started it, shows nobody the messages between others.

Two checks need the stored resource rather than the request, and live in the service layer
(through ``identity.CALLER``): ``GetMessage`` answers NOT_FOUND for a message the caller neither
sent nor received, ``ListMessages`` lists only such messages, and the lease rules
(``Complete``, ``Fail``, ``ExtendLease``, ``Ack``, ``Nack``) already refuse an agent that does not
hold the lease or the delivery it names.

Calls outside the table are refused (PERMISSION_DENIED), except health checks (always open)
and reflection (open when served).
"""

from __future__ import annotations

from dataclasses import dataclass

from .identity import Identity, Role

ANY = frozenset({Role.AGENT, Role.ORCHESTRATOR, Role.ADMIN})
TASKS = frozenset({Role.ORCHESTRATOR, Role.ADMIN})
ADMIN = frozenset({Role.ADMIN})

OPEN_PREFIXES = ("/grpc.health.v1.Health/",)
REFLECTION_PREFIX = "/grpc.reflection."


@dataclass(frozen=True, slots=True)
class Rule:
    roles: frozenset[Role]
    own: str = ""  # the request field(s) naming the acting agent (see the module docstring)
    scoped: str = ""  # or: a field that, when set, is served scoped to the caller's own messages


_ADMIN = "/a2a.broker.v1.Admin/"
_AGENTS = "/a2a.broker.v1.AgentRegistry/"
_MSG = "/a2a.broker.v1.Messaging/"
_TASKS = "/a2a.broker.v1.TaskQueue/"
_A2A = "/lf.a2a.v1.A2AService/"
_A2A_V03 = "/a2a.v1.A2AService/"

# Every A2A operation has the same row (below): the HTTP bindings, which learn the operation only
# once a2a-sdk's dispatcher has parsed the body, check this one (a unit test keeps the rows equal).
A2A_POLICY_KEY = _A2A + "SendMessage"

POLICY: dict[str, Rule] = {
    # Admin: the operator's (tokens).
    _ADMIN + "CreateToken": Rule(ADMIN),
    _ADMIN + "ListTokens": Rule(ADMIN),
    _ADMIN + "RevokeToken": Rule(ADMIN),
    # Agent registry: an agent registers, heartbeats and deregisters itself; the directory is public.
    _AGENTS + "Register": Rule(ANY, "agent_id"),
    _AGENTS + "Heartbeat": Rule(ANY, "agent_id"),
    _AGENTS + "Deregister": Rule(ANY, "agent_id"),
    _AGENTS + "GetAgent": Rule(ANY),
    _AGENTS + "ListAgents": Rule(ANY),
    _AGENTS + "WatchAgents": Rule(ANY),
    # Messaging: send as yourself, receive and settle your own deliveries, read what you sent or got.
    _MSG + "Send": Rule(ANY, "sender_id"),
    _MSG + "SendBatch": Rule(ANY, "messages[].sender_id"),
    _MSG + "Subscribe": Rule(ANY, "agent_id"),
    _MSG + "Ack": Rule(ANY, "agent_id"),
    _MSG + "Nack": Rule(ANY, "agent_id"),
    _MSG + "GetMessage": Rule(ANY),  # its sender or recipient only: in the servicer
    _MSG + "ListMessages": Rule(ANY, "sender_id|recipient_id", scoped="conversation_id"),
    _MSG + "ListConversations": Rule(ANY, "participant"),  # one's own (an admin's: any)
    _MSG + "Requeue": Rule(ADMIN),  # dead letters are the operator's
    _MSG + "Purge": Rule(ADMIN),
    _MSG + "Publish": Rule(ANY),  # each entry's sender_id must name the caller: in the servicer
    _MSG + "Consume": Rule(ANY),  # the first request's agent must be the caller: in the servicer
    # Subscriptions to subjects: anyone may make one and read them; only its creator (or an admin)
    # deletes or moves it (in the servicer: it needs the stored subscription). Consuming one is
    # Subscribe or Consume as oneself.
    _MSG + "CreateSubscription": Rule(ANY),
    _MSG + "GetSubscription": Rule(ANY),
    _MSG + "ListSubscriptions": Rule(ANY),
    _MSG + "DeleteSubscription": Rule(ANY),
    _MSG + "Seek": Rule(ANY),
    # Task queue: orchestrators submit, cancel, read and watch; any agent works its own leases.
    _TASKS + "Submit": Rule(TASKS),
    _TASKS + "SubmitGraph": Rule(TASKS),
    _TASKS + "Cancel": Rule(TASKS),
    _TASKS + "Replay": Rule(TASKS),
    _TASKS + "Get": Rule(TASKS),
    _TASKS + "List": Rule(TASKS),
    _TASKS + "GetTree": Rule(TASKS),
    _TASKS + "GetHistory": Rule(TASKS),
    _TASKS + "GetDependencies": Rule(TASKS),
    _TASKS + "AddDependency": Rule(TASKS),
    _TASKS + "RemoveDependency": Rule(TASKS),
    _TASKS + "Watch": Rule(TASKS),
    _TASKS + "Claim": Rule(ANY, "agent_id"),
    _TASKS + "Listen": Rule(ANY, "agent_id"),
    _TASKS + "Work": Rule(ANY),  # the first request's agent must be the caller: in the servicer
    _TASKS + "ExtendLease": Rule(ANY, "agent_id"),
    _TASKS + "Complete": Rule(ANY, "agent_id"),
    _TASKS + "CompleteBatch": Rule(ANY, "items[].agent_id"),
    _TASKS + "Fail": Rule(ANY, "agent_id"),
    # Sessions are the orchestrators' (as submitting and watching tasks are).
    _TASKS + "CreateSession": Rule(TASKS),
    _TASKS + "GetSession": Rule(TASKS),
    _TASKS + "ListSessions": Rule(TASKS),
    _TASKS + "CloseSession": Rule(TASKS),
    _TASKS + "CancelSession": Rule(TASKS),
    # Schedules submit tasks: the orchestrators' too.
    _TASKS + "CreateSchedule": Rule(TASKS),
    _TASKS + "GetSchedule": Rule(TASKS),
    _TASKS + "ListSchedules": Rule(TASKS),
    _TASKS + "PauseSchedule": Rule(TASKS),
    _TASKS + "ResumeSchedule": Rule(TASKS),
    _TASKS + "DeleteSchedule": Rule(TASKS),
    _TASKS + "TriggerSchedule": Rule(TASKS),
    # Limits are the operator's to set; orchestrators may read them and how the keys stand.
    _TASKS + "SetConcurrencyLimit": Rule(ADMIN),
    _TASKS + "DeleteConcurrencyLimit": Rule(ADMIN),
    _TASKS + "ListConcurrencyLimits": Rule(TASKS),
    _TASKS + "ListConcurrencyKeys": Rule(TASKS),
    # The A2A gateway (broker/gateway): any caller may speak A2A; each sees and cancels only the
    # tasks it sent (an admin: all), in the gateway, by the owner label the task carries.
    **{
        _A2A + m: Rule(ANY)
        for m in (
            "SendMessage",
            "SendStreamingMessage",
            "GetTask",
            "ListTasks",
            "CancelTask",
            "SubscribeToTask",
            "CreateTaskPushNotificationConfig",
            "GetTaskPushNotificationConfig",
            "ListTaskPushNotificationConfigs",
            "DeleteTaskPushNotificationConfig",
            "GetExtendedAgentCard",
        )
    },
    # A2A v0.3's gRPC service (the same handler, through a2a-sdk's compatibility layer).
    **{
        _A2A_V03 + m: Rule(ANY)
        for m in (
            "SendMessage",
            "SendStreamingMessage",
            "GetTask",
            "CancelTask",
            "TaskSubscription",
            "CreateTaskPushNotificationConfig",
            "GetTaskPushNotificationConfig",
            "ListTaskPushNotificationConfig",
            "DeleteTaskPushNotificationConfig",
            "GetAgentCard",
        )
    },
}


class Denied(Exception):
    """The caller may not make this call; the message says why (no secrets in it)."""


def check(method: str, rule: Rule, who: Identity, request: object) -> None:
    """Raise Denied unless ``who`` may call ``method`` (ruled by ``rule``) with ``request``."""
    if who.role not in rule.roles:
        raise Denied(f"{method.rsplit('/', 1)[-1]} needs the role {' or '.join(sorted(rule.roles))}")
    if not rule.own or who.role is Role.ADMIN:
        return
    if "|" in rule.own:
        names = rule.own.split("|")
        if not any(who.owns(getattr(request, n)) for n in names if getattr(request, n)):
            named = any(getattr(request, n) for n in names)
            if rule.scoped and getattr(request, rule.scoped) and not named:
                return  # served scoped to the caller's own messages (naming someone else is not)
            also = f" (or name a {rule.scoped})" if rule.scoped else ""
            raise Denied(f"{' or '.join(names)}: must name {who.subject!r}, the caller{also}")
        return
    if "[]." in rule.own:
        repeated, name = rule.own.split("[].")
        for i, item in enumerate(getattr(request, repeated)):
            if not who.owns(getattr(item, name)):
                raise Denied(f"{repeated}[{i}].{name}: must be {who.subject!r}, the caller")
        return
    if not who.owns(getattr(request, rule.own)):
        raise Denied(f"{rule.own}: must be {who.subject!r}, the caller (acting as another agent)")
