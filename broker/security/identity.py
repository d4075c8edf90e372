"""Who is calling: the identity an authenticated call carries, and the context variable that
makes it visible to the service layer for the few checks that need the resource itself.

A subject is an agent id (``worker-7``) or, ending in ``*``, an id prefix for a fleet
(``workers-*`` acts as every agent whose id starts with ``workers-``).
"""

from __future__ import annotations

import contextvars
import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel


class Role(enum.StrEnum):
    AGENT = "agent"  # acts only as its own subject
    ORCHESTRATOR = "orchestrator"  # an agent that may also submit, cancel, read and watch tasks
    ADMIN = "admin"  # everything
    VIEWER = "viewer"  # reads the console, its JSON API and /metrics; no RPC, no change


# The roles that may read the operator's surfaces: the console, its JSON API and /metrics.
OPERATOR_ROLES = frozenset({Role.ADMIN, Role.VIEWER})


def bearer(value: str) -> str | None:
    """The token of an ``Authorization`` value ``Bearer <token>``; None when it is not one."""
    return value[7:].strip() if value.startswith("Bearer ") else None


@dataclass(frozen=True, slots=True)
class Identity:
    subject: str
    role: Role
    via: str = "token"  # token, jwt or mtls (for the audit log)
    # Not who it is, but when its streams end (``streams.OpenStreams``): the token id, when the
    # credentials can be revoked, and when they expire (microseconds since the epoch).
    credential: str = field(default="", compare=False)
    expires_us: int | None = field(default=None, compare=False)

    def owns(self, agent_id: str) -> bool:
        """True when this identity may act as ``agent_id``."""
        if self.role is Role.ADMIN:
            return True
        subject = self.subject
        if subject.endswith("*"):
            return len(agent_id) >= len(subject) and agent_id.startswith(subject[:-1])
        return agent_id == subject


def check_subject(subject: str) -> str:
    """A subject as tokens carry it: an id, or an id prefix ending in ``*`` (not ``*`` alone)."""
    subject = subject.strip()
    if not subject or subject == "*" or "*" in subject[:-1] or len(subject) > 128:
        raise ValueError(
            f"subject {subject!r}: an agent id, or an id prefix ending in '*' (1-128 characters)"
        )
    return subject


# The identity of the call being served; None when authentication is off (everything allowed).
CALLER: contextvars.ContextVar[Identity | None] = contextvars.ContextVar("a2a_broker_caller", default=None)


# How the call being served charges each entry of its request stream to the caller's quotas
# (set by the security interceptor on a bidirectional stream; None: nothing to charge). It returns
# what to call once the entry is answered.
CHARGE: contextvars.ContextVar[Callable[[str, Any], Callable[[], None]] | None] = contextvars.ContextVar(
    "a2a_broker_charge", default=None
)


def _answered() -> None:
    pass


def charge(method: str, request: Any) -> Callable[[], None]:
    """Charge one entry of a request stream as its unary twin ``method`` (the full name, such as
    ``/a2a.broker.v1.Messaging/Send``) would be charged: calls, bytes, and for a send the
    recipient's pending cap. Raises ``ResourceExhausted`` (its message names the retry delay).
    Returns what to call once the entry is answered (a send counts as in flight until then)."""
    charger = CHARGE.get()
    return _answered if charger is None else charger(method, request)


def may_act_as(agent_id: str) -> bool:
    """Whether the caller may act as ``agent_id`` (checks the service layer makes per item, such
    as each entry of a Publish stream)."""
    who = CALLER.get()
    return who is None or who.owns(agent_id)


def recorded_actor(given: str) -> str:
    """Who an audit record names (a Cancel's ``actor``, a Submit's ``submitted_by``...): with
    authentication on, the caller's authenticated identity, never what the request claims. The
    request's text, when it says something else, is kept beside it labelled as the caller's note:
    ``planner (note: admin)``. A fleet token may name one of its agents (``workers-7`` for
    ``workers-*``). Without authentication nobody is known: the request's text, as given."""
    who = CALLER.get()
    if who is None:
        return given
    subject = who.subject
    if not given or given == subject:
        return subject
    if subject.endswith("*") and who.role is not Role.ADMIN and who.owns(given):
        return given
    return f"{subject} (note: {given})"


M = TypeVar("M", bound=BaseModel)


def attributed(inp: M, field: str) -> M:
    """A validated input with its audit field ``field`` as ``recorded_actor`` makes it (replaced
    after validation: the request's own text was checked against the field's limits)."""
    if CALLER.get() is None:
        return inp
    return inp.model_copy(update={field: recorded_actor(getattr(inp, field))})


def may_read_message(sender_id: str | None, recipient_id: str | None) -> bool:
    """Whether the caller may see a message: its sender or recipient, or an admin. Others are
    answered as if the message did not exist (NOT_FOUND), so ids cannot be probed. Being in the
    same conversation is not enough: whoever sends first under a conversation id would read
    everything later said under it."""
    who = CALLER.get()
    if who is None or who.role is Role.ADMIN:
        return True
    return bool(sender_id and who.owns(sender_id)) or bool(recipient_id and who.owns(recipient_id))


def reader_scope() -> str | None:
    """Whose messages a listing may show the caller: None for all (no authentication, or an
    admin), else its subject (an agent id, or a fleet's id prefix ending in ``*``): the messages
    that subject sent or received."""
    who = CALLER.get()
    if who is None or who.role is Role.ADMIN:
        return None
    return who.subject
