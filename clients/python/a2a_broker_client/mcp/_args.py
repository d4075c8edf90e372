"""The tools' arguments: one pydantic model per tool, whose JSON schema is the tool's input schema.

The descriptions are written for the model that calls the tools. Only the shape of each argument is
checked here (a number is a number, a time is a time, no argument is unknown): the rules (ranges,
lengths, who may do what) are the broker's, checked where every other caller is checked.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

TaskId = Annotated[
    str, Field(min_length=1, description="a task id, as submit_task or list_tasks returned it")
]
Limit = Annotated[int, Field(ge=1, le=500, description="the most items to return (1-500)")]


class Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _utc(value: datetime | None) -> datetime | None:
    """A time without an offset is read as UTC."""
    return value if value is None or value.tzinfo else value.replace(tzinfo=UTC)


class Empty(Args):
    pass


class ListAgents(Args):
    capability: str = Field("", description="only agents having this capability")
    status: Literal["available", "busy", "maintenance", "offline"] | None = Field(
        None, description="only agents in this state (offline: not heard from lately)"
    )
    limit: Limit = 100


class TaskFields(Args):
    title: str = Field(description="a short title saying what is to be done (shown in every listing)")
    capability: str = Field(
        "",
        description="the capability an agent needs to run it (see list_capabilities); empty: any agent",
    )
    payload: Any = Field(
        None,
        description="the task's input for the agent: any JSON value (an object is usual); a string is "
        "sent as plain text",
    )
    priority: int | None = Field(None, description="0 (lowest) to 10 (most urgent); default 5")
    deadline: datetime | None = Field(
        None,
        description="when it should be done, ISO 8601 (e.g. 2026-01-31T12:00:00Z; UTC when no offset): "
        "its priority rises as the deadline nears",
    )
    session_id: str = Field("", description="the session to run it in (create_session); children inherit it")
    max_retries: int | None = Field(None, description="attempts after a failure before it fails for good")
    labels: dict[str, str] = Field(
        default_factory=dict, description="key -> value labels; list_tasks finds tasks by one"
    )

    _deadline_utc = field_validator("deadline")(_utc)


class SubmitTask(TaskFields):
    parent_id: str = Field("", description="the task this one is a subtask of")
    depends_on: list[str] = Field(
        default_factory=list,
        description="ids of tasks that must complete first (it waits, and is cancelled if one fails)",
    )
    idempotency_key: str = Field(
        "",
        description="any unique string: submitting again with the same key returns the first task "
        "instead of a second one (safe retries)",
    )


class GraphNode(TaskFields):
    key: str = Field(
        description="this node's name within the graph, used by the others' depends_on and parent"
    )
    depends_on: list[str] = Field(
        default_factory=list, description="keys of nodes of this graph that must complete first"
    )
    parent: str = Field("", description="the key of the node this one is a subtask of")


class SubmitGraph(Args):
    nodes: list[GraphNode] = Field(
        min_length=1, description="the tasks, all submitted together or none (a cycle is refused)"
    )


class WaitForTask(Args):
    task_id: TaskId
    timeout_s: float = Field(
        30.0,
        gt=0,
        le=300,
        description="the longest to wait, in seconds (at most 300); if the task is not finished by "
        "then, its current state is returned and you may call again",
    )


class GetTask(Args):
    task_id: TaskId
    history: bool = Field(True, description="include its state changes (who did what, when)")


TaskStatusName = Literal["pending", "blocked", "ready", "running", "completed", "failed", "cancelled"]


class ListTasks(Args):
    status: TaskStatusName | None = Field(None, description="only tasks in this state")
    session_id: str = Field("", description="only the tasks of this session")
    capability: str = Field("", description="only tasks needing this capability")
    agent_id: str = Field("", description="only tasks assigned to this agent")
    parent_id: str = Field("", description="only the direct subtasks of this task")
    root_id: str = Field("", description="only this task's whole tree")
    tag: str = Field("", description="only tasks with this tag")
    label: str = Field("", description="only tasks with this label, written key=value")
    created_after: datetime | None = Field(None, description="only tasks created after this time (ISO 8601)")
    created_before: datetime | None = Field(
        None, description="only tasks created before this time (ISO 8601)"
    )
    limit: Limit = 50

    _times_utc = field_validator("created_after", "created_before")(_utc)


class CancelTask(Args):
    task_id: TaskId
    cascade: bool = Field(False, description="also cancel its unfinished subtasks")
    reason: str = Field("", description="why, recorded in the task's history")


class RetryTask(Args):
    task_id: str = Field(
        min_length=1, description="a failed or cancelled task: it is submitted again as a new task"
    )


class SendMessage(Args):
    sender_id: str = Field(
        min_length=1,
        description="the agent id you send as (with a token, one it allows you to act as)",
    )
    to: str = Field(
        "",
        description="direct: the recipient agent id; anycast: the capability (one agent having it "
        "gets it); broadcast: the capability (every agent having it), empty for every agent. May be "
        "empty with reply_to: the replied message's sender",
    )
    mode: Literal["direct", "anycast", "broadcast"] = Field("direct", description="who receives it")
    payload: Any = Field(description="the message: any JSON value; a string is sent as plain text")
    message_type: str = Field("", description="a type name the recipient may dispatch on")
    conversation_id: str = Field(
        "",
        description="the conversation it belongs to (empty: a new one, or with reply_to the replied one's)",
    )
    reply_to: str = Field("", description="the id of the message this one answers (its conversation is kept)")


class ReadConversation(Args):
    conversation_id: str = Field(min_length=1, description="the conversation to read")
    as_agent: str = Field(
        "",
        description="the agent you read as: its messages in the conversation (needed unless you are "
        "an admin, or the orchestrator that started the conversation)",
    )
    limit: Limit = 100


class CreateSession(Args):
    name: str = Field("", description="a name for the session")
    context: dict[str, Any] = Field(
        default_factory=dict, description="shared context every task of the session can read"
    )
    labels: dict[str, str] = Field(default_factory=dict, description="key -> value labels")
    deadline: datetime | None = Field(None, description="when the session should be over (ISO 8601)")
    max_tasks: int = Field(0, ge=0, description="the most tasks it may hold (0: no limit)")

    _deadline_utc = field_validator("deadline")(_utc)


class GetSession(Args):
    session_id: str = Field(min_length=1, description="the session id create_session returned")
    limit: Limit = 100


class CloseSession(Args):
    session_id: str = Field(min_length=1, description="the session to close")
    summary: str = Field("", description="what the session achieved, kept with it")


def schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema for a host: references inlined (some hosts do not follow ``$ref``)
    and pydantic's generated titles left out (the descriptions say more)."""
    raw = model.model_json_schema()
    defs = raw.pop("$defs", {})

    def inline(node: Any, names: bool = False) -> Any:
        # names: ``node`` maps property names to schemas (a property may be called "title")
        if isinstance(node, dict):
            if "$ref" in node:
                return inline(defs[node["$ref"].rsplit("/", 1)[1]])
            return {
                k: inline(v, names=k == "properties" and not names)
                for k, v in node.items()
                if names or k != "title"
            }
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    out: dict[str, Any] = inline(raw)
    return out


def argument_errors(tool: str, exc: ValidationError) -> str:
    """A validation failure as the model should read it: each argument named, with what is wrong."""
    lines = []
    for err in exc.errors():
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".")
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = f"not an argument of {tool}"
        lines.append(f"argument '{where or '(arguments)'}': {msg}")
    return f"{tool}: bad arguments, nothing was done:\n" + "\n".join(lines)
