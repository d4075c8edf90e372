"""How broker tasks read as A2A tasks (pure rules; the gateway, ``broker/gateway/``, applies them).

An A2A task is a tree of broker tasks: its first turn is a root task (``task_type`` "a2a"), and
each later message the caller sends into it (answering ``input-required``) is one more turn, a child
of the root. The A2A task's id is the root's id, its ``contextId`` the root's session, and its state
that of its latest turn:

=====================  ===========================================================
broker task (turn)     A2A ``TaskState``
=====================  ===========================================================
pending, blocked,      ``TASK_STATE_SUBMITTED``
ready
running                ``TASK_STATE_WORKING``
completed              ``TASK_STATE_COMPLETED``, or the state the worker declared in its
                       result: ``input-required``, ``auth-required`` or ``rejected``
failed                 ``TASK_STATE_FAILED``
cancelled              ``TASK_STATE_CANCELED``
=====================  ===========================================================

A turn that asks for input has *completed*: its worker's capacity is free while the caller
thinks, and the answer is a new turn any able agent may take (with the history in its payload).

Exposure: every turn requires the capability ``GATEWAY_CAPABILITY`` beside its skill, which an
agent exposed to A2A (``both``, the default, or ``a2a``) holds when it leases (``marks``: it is
not stored with the agent's own); an agent exposed to the broker's API only never holds it, and one
exposed to A2A only leases nothing else.
"""

from __future__ import annotations

from ..models.agents import Exposure
from ..models.tasks import TaskStatus
from . import marks

TASK_TYPE = "a2a"  # the task_type of every turn the gateway submits
OWNER_LABEL = "a2a.owner"  # the label naming who sent the first message (ListTasks' scope)
SKILL_KEYS = ("skill", "skills")  # message or request metadata naming the skill(s) to run
AGENT_KEY = "agent"  # message or request metadata naming the one agent to run it
GATEWAY_CAPABILITY = marks.GATEWAY  # required by every turn; held by agents exposed to A2A

SUBMITTED = "TASK_STATE_SUBMITTED"
WORKING = "TASK_STATE_WORKING"
COMPLETED = "TASK_STATE_COMPLETED"
FAILED = "TASK_STATE_FAILED"
CANCELED = "TASK_STATE_CANCELED"
INPUT_REQUIRED = "TASK_STATE_INPUT_REQUIRED"
AUTH_REQUIRED = "TASK_STATE_AUTH_REQUIRED"
REJECTED = "TASK_STATE_REJECTED"

FINAL = frozenset({COMPLETED, FAILED, CANCELED, REJECTED})
INTERRUPTED = frozenset({INPUT_REQUIRED, AUTH_REQUIRED})  # waiting for the caller

_BY_STATUS = {
    TaskStatus.PENDING: SUBMITTED,
    TaskStatus.BLOCKED: SUBMITTED,
    TaskStatus.READY: SUBMITTED,
    TaskStatus.RUNNING: WORKING,
    TaskStatus.COMPLETED: COMPLETED,
    TaskStatus.FAILED: FAILED,
    TaskStatus.CANCELLED: CANCELED,
}
# What a worker may declare in its result for a completed turn.
DECLARED = {
    "completed": COMPLETED,
    "input-required": INPUT_REQUIRED,
    "auth-required": AUTH_REQUIRED,
    "rejected": REJECTED,
}


def state_of(status: TaskStatus, declared: str | None = None) -> str:
    """The A2A state of a turn in ``status``; ``declared``: the state its completed result names."""
    if status is TaskStatus.COMPLETED and declared is not None:
        return DECLARED.get(declared, COMPLETED)
    return _BY_STATUS[status]


def continuable(state: str) -> bool:
    """A message may go into an existing A2A task only while it waits for the caller."""
    return state in INTERRUPTED


def ended(state: str) -> bool:
    """Final or waiting for the caller: a blocking SendMessage answers, a stream ends."""
    return state in FINAL or state in INTERRUPTED


def owner_label(subject: str) -> str:
    return f"{OWNER_LABEL}={subject}"


def offers_a2a(exposure: Exposure) -> bool:
    """Whether an agent's capabilities are skills on the A2A agent card."""
    return exposure is not Exposure.BROKER
