"""The A2A request handler: a2a-sdk's ``RequestHandler`` interface answered by the task queue.

a2a-sdk's ``GrpcHandler`` serves ``lf.a2a.v1.A2AService`` and calls this handler; the protocol
(parsing, ``google.rpc.ErrorInfo`` with domain ``a2a-protocol.org``) is the SDK's. Here:

- ``SendMessage`` without a ``taskId`` submits a task (a *turn*, ``broker.domain.a2a_tasks``) for
  the skill named in the message's (or request's) metadata ``skill``: any registered agent able to
  run it may take it. The ``contextId`` is its session (created implicitly; derived from the
  message id when absent, so a retry is the same task), the ``messageId`` its idempotency key.
  With a ``taskId``, the message answers a task waiting for input: a new turn, a child of the first.
- ``SendStreamingMessage`` and ``SubscribeToTask`` send the task as it is, then each status change
  and new artifact as the turns change, until it ends or waits for input. A subscriber that
  reconnects gets the current task first again.
- ``GetTask``, ``ListTasks`` (by its sender: an admin sees all) and ``CancelTask`` (the running
  turn's holder is told on its stream, as for any cancellation).
- Push notifications are not supported.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from a2a.server.context import ServerCallContext
from a2a.server.events.event_queue import Event
from a2a.server.request_handlers.request_handler import RequestHandler
from a2a.types import a2a_pb2 as a2a
from a2a.utils import errors as a2a_errors

from ..core.registry import Registry
from ..core.taskqueue import TaskQueue
from ..domain import a2a_tasks as rules
from ..domain import marks
from ..errors import AlreadyExists, BrokerError, InvalidArgument, NotFound
from ..models.common import decode_page_token, encode_page_token
from ..models.tasks import CancelInput, Task, TaskFilter, TaskSpecInput, WatchScope
from ..security.identity import CALLER, Role
from .card import DIRECTORY_SKILL, Card
from .convert import (
    Turn,
    a2a_task,
    agent_of,
    history_of,
    read_turn,
    skills_of,
    turn_spec,
)

log = logging.getLogger("broker.a2a")

P = ParamSpec("P")
R = TypeVar("R")
ANONYMOUS = "anonymous"
CANCELLED_TURN_CAPABILITY = "a2a.cancelled-turn"  # a turn that records a cancellation: nobody runs it
MAX_LIST_PAGE = 100


class _Caller:
    def __init__(self) -> None:
        who = CALLER.get()
        self.subject = who.subject if who is not None else ANONYMOUS
        self.admin = who is not None and who.role is Role.ADMIN

    def sees(self, task: Task) -> bool:
        return self.admin or task.labels.get(rules.OWNER_LABEL) == self.subject


def _translated(exc: BrokerError) -> Exception:
    """A broker error as the A2A error the SDK turns into a status with ErrorInfo (or, for what
    A2A has no error for, as it is: the gateway's GrpcHandler maps it as the servicers do)."""
    if isinstance(exc, NotFound):
        return a2a_errors.TaskNotFoundError(str(exc))
    if isinstance(exc, InvalidArgument | AlreadyExists):
        return a2a_errors.InvalidParamsError(str(exc))
    return exc


def _errors(fn: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    @wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except BrokerError as exc:
            raise _translated(exc) from exc

    return wrapper


def _stream_errors(
    fn: Callable[P, AsyncIterator[Event]],
) -> Callable[P, AsyncGenerator[Event]]:
    @wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> AsyncGenerator[Event]:
        try:
            async for item in fn(*args, **kwargs):
                yield item
        except BrokerError as exc:
            raise _translated(exc) from exc

    return wrapper


class BrokerA2AHandler(RequestHandler):
    def __init__(self, tasks: TaskQueue, registry: Registry, card: Card) -> None:
        self.tasks = tasks
        self.registry = registry
        self.card = card

    # ------------------------------------------------------------ reading

    async def _turns(self, task_id: str, caller: _Caller) -> list[Turn]:
        """The turns of the A2A task ``task_id`` the caller may see (TaskNotFoundError otherwise)."""
        if not task_id:
            raise a2a_errors.InvalidParamsError("id: required")
        try:
            root = await self.tasks.get(task_id)
        except NotFound:
            raise a2a_errors.TaskNotFoundError(f"task {task_id!r} not found") from None
        if root.task_type != rules.TASK_TYPE or root.parent_id is not None or not caller.sees(root):
            raise a2a_errors.TaskNotFoundError(f"task {task_id!r} not found")
        return await self._turns_of(root)

    async def _turns_of(self, root: Task) -> list[Turn]:
        """A root turn (already read, and visible) and its later turns."""
        later, _ = await self.tasks.list(TaskFilter(parent_id=root.task_id, page_size=1000))
        return [read_turn(root), *(read_turn(t) for t in later)]

    @_errors
    async def on_get_task(self, params: a2a.GetTaskRequest, context: ServerCallContext) -> a2a.Task | None:
        turns = await self._turns(params.id, _Caller())
        length = params.history_length if params.HasField("history_length") else None
        return a2a_task(turns, length)

    @_errors
    async def on_list_tasks(
        self, params: a2a.ListTasksRequest, context: ServerCallContext
    ) -> a2a.ListTasksResponse:
        caller = _Caller()
        size = params.page_size or 50
        if not 1 <= size <= MAX_LIST_PAGE:
            raise a2a_errors.InvalidParamsError(f"page_size: must be 1-{MAX_LIST_PAGE}")
        token = decode_page_token(params.page_token, 1) if params.page_token else None
        if token is not None and type(token[0]) is not int:
            raise a2a_errors.InvalidParamsError("page_token: is not a token this broker issued")
        flt = TaskFilter(
            task_type=rules.TASK_TYPE,
            level=0,
            label="" if caller.admin else rules.owner_label(caller.subject),
            session_id=params.context_id,
            page_size=size,
            after=token[0] if token else None,
        )
        roots, last = await self.tasks.list(flt)
        length = params.history_length if params.HasField("history_length") else None
        since = (
            params.status_timestamp_after.ToMicroseconds()
            if params.HasField("status_timestamp_after")
            else None
        )
        out = a2a.ListTasksResponse(page_size=size)
        for root in roots:
            # The roots were listed by the caller's owner label (or for an admin): read only their turns.
            task = a2a_task(await self._turns_of(root), length, params.include_artifacts)
            if params.status and task.status.state != params.status:
                continue
            if since is not None and task.status.timestamp.ToMicroseconds() < since:
                continue
            out.tasks.append(task)
        out.total_size = len(out.tasks)
        out.next_page_token = encode_page_token(last) if last else ""
        return out

    # ------------------------------------------------------------ sending

    async def _send(self, params: a2a.SendMessageRequest) -> str:
        """Submit the message as a turn; the A2A task's id."""
        msg, caller = params.message, _Caller()
        if not msg.message_id:
            raise a2a_errors.InvalidParamsError("message.message_id: required")
        if not msg.parts:
            raise a2a_errors.InvalidParamsError("message.parts: at least one part is required")
        key = f"a2a:{caller.subject}:{msg.message_id}"
        if len(key) > 128:
            key = "a2a:" + hashlib.sha256(key.encode()).hexdigest()
        if msg.task_id:
            turns = await self._turns(msg.task_id, caller)
            if any(t.message.message_id == msg.message_id for t in turns):
                return msg.task_id  # a retry of a message already taken
            root = turns[0].task
            state = turns[-1].state
            if not rules.continuable(state):
                raise a2a_errors.UnsupportedOperationError(
                    f"message.task_id: task {msg.task_id!r} is {state}; only a task waiting for input"
                    " takes another message"
                )
            context_id = root.session_id or ""
            if msg.context_id and msg.context_id != context_id:
                raise a2a_errors.InvalidParamsError(
                    f"message.context_id: task {msg.task_id!r} belongs to context {context_id!r}"
                )
            spec = turn_spec(
                msg,
                caller.subject,
                key,
                context_id,
                history_of(turns),
                required_capabilities=list(root.required_capabilities),
                parent_id=root.task_id,
            )
            await self.tasks.submit(spec)
            return root.task_id
        required = await self._route(params)
        digest = hashlib.sha256(f"{caller.subject}\0{msg.message_id}".encode()).hexdigest()[:24]
        context_id = msg.context_id or f"ctx-{digest}"
        spec = turn_spec(
            msg, caller.subject, key, context_id, [], required_capabilities=required, session_id=context_id
        )
        task, duplicate = await self.tasks.submit(spec)
        if not duplicate:
            log.info("a2a task submitted", extra={"task_id": task.task_id, "capabilities": required})
        return task.task_id

    async def _route(self, params: a2a.SendMessageRequest) -> list[str]:
        """The capabilities a new A2A task requires: its skills (and, for a message naming an
        agent, that agent's mark), and the gateway's. Refused when nobody could run it."""
        skills, named = skills_of(params), agent_of(params)
        if named:
            if len(marks.addressed(named)) > 128:
                raise a2a_errors.InvalidParamsError("message.metadata.agent: at most 127 characters")
            try:
                agent = await self.registry.get(named)
            except NotFound:
                raise a2a_errors.InvalidParamsError(f"message.metadata.agent: no agent {named!r}") from None
            if not rules.offers_a2a(agent.exposure):
                raise a2a_errors.InvalidParamsError(
                    f"message.metadata.agent: agent {named!r} does not take work through A2A"
                )
            missing = sorted(set(skills) - set(agent.capabilities))
            if missing:
                raise a2a_errors.InvalidParamsError(
                    f"message.metadata.skill: agent {named!r} does not offer {missing[0]!r}"
                )
            return sorted({*skills, marks.addressed(named), rules.GATEWAY_CAPABILITY})
        skills = skills or await self._only_skill()
        for skill in skills:
            if not await self.card.offers(skill):
                raise a2a_errors.InvalidParamsError(
                    f"message.metadata.skill: no registered agent offers the skill {skill!r} through A2A"
                )
        return sorted({*skills, rules.GATEWAY_CAPABILITY})

    async def _directory(self, params: a2a.SendMessageRequest) -> a2a.Message | None:
        """A message for the broker's own skill, answered at once; None for any other."""
        if params.message.task_id or skills_of(params) != [DIRECTORY_SKILL]:
            return None
        offered = await self.card.offered()
        lines = [f"{cap}: {', '.join(a.agent_id for a in agents)}" for cap, agents in sorted(offered.items())]
        answer = a2a.Message(
            message_id=f"{params.message.message_id}-directory",
            role=a2a.ROLE_AGENT,
            context_id=params.message.context_id,
        )
        answer.parts.add(text="\n".join(lines) or "no agent is registered")
        return answer

    async def _only_skill(self) -> list[str]:
        skills = [s.id for s in (await self.card.build()).skills if s.id != DIRECTORY_SKILL]
        if len(skills) == 1:
            return skills
        offered = ", ".join(skills) or "none yet"
        raise a2a_errors.InvalidParamsError(
            f"message.metadata.skill: name the skill to run (offered: {offered})"
        )

    @_errors
    async def on_message_send(
        self, params: a2a.SendMessageRequest, context: ServerCallContext
    ) -> a2a.Task | a2a.Message:
        answer = await self._directory(params)
        if answer is not None:
            return answer
        task_id = await self._send(params)
        caller = _Caller()
        if params.configuration.return_immediately:
            return a2a_task(await self._turns(task_id, caller))
        async for _ in self._follow(task_id, caller):
            pass  # until it ends or waits for the caller
        return a2a_task(await self._turns(task_id, caller))  # as it ended, history included

    @_stream_errors
    async def on_message_send_stream(
        self, params: a2a.SendMessageRequest, context: ServerCallContext
    ) -> AsyncIterator[Event]:
        answer = await self._directory(params)
        if answer is not None:
            yield answer
            return
        task_id = await self._send(params)
        async for event in self._follow(task_id, _Caller()):
            yield event

    @_stream_errors
    async def on_subscribe_to_task(
        self, params: a2a.SubscribeToTaskRequest, context: ServerCallContext
    ) -> AsyncIterator[Event]:
        async for event in self._follow(params.id, _Caller()):
            yield event

    async def _follow(self, task_id: str, caller: _Caller) -> AsyncIterator[Event]:
        """The task as it is, then each new artifact and status change, until it ends or waits
        for the caller. The watch is in place before the first read: no change falls between."""
        await self._turns(task_id, caller)  # TaskNotFoundError before watching
        watcher, _ = await self.tasks.watch(WatchScope.SUBTREE, task_id)
        with watcher:
            task = a2a_task(await self._turns(task_id, caller))
            yield task
            sent = {a.artifact_id for a in task.artifacts}
            state = task.status.state
            while not rules.ended(a2a.TaskState.Name(state)):
                await watcher.get()
                while watcher.pending():  # a burst of transitions: read the task once
                    await watcher.get()
                task = a2a_task(await self._turns(task_id, caller))
                for art in task.artifacts:
                    if art.artifact_id not in sent:
                        sent.add(art.artifact_id)
                        yield a2a.TaskArtifactUpdateEvent(
                            task_id=task.id, context_id=task.context_id, artifact=art, last_chunk=True
                        )
                if task.status.state != state:
                    state = task.status.state
                    yield a2a.TaskStatusUpdateEvent(
                        task_id=task.id, context_id=task.context_id, status=task.status
                    )

    # ------------------------------------------------------------ cancelling

    @_errors
    async def on_cancel_task(
        self, params: a2a.CancelTaskRequest, context: ServerCallContext
    ) -> a2a.Task | None:
        caller = _Caller()
        turns = await self._turns(params.id, caller)
        state = turns[-1].state
        if state in rules.FINAL:
            raise a2a_errors.TaskNotCancelableError(
                f"task {params.id!r} is {state}: it has ended, nothing to cancel"
            )
        reason = f"cancelled through A2A by {caller.subject}"
        ids = await self.tasks.cancel(
            CancelInput(task_id=params.id, cascade=True, reason=reason, actor=caller.subject)
        )
        if not ids:  # every turn had finished: the task waited for input. A cancelled turn records it.
            root = turns[0].task
            spec = TaskSpecInput(
                title="cancelled",
                task_type=rules.TASK_TYPE,
                required_capabilities=[CANCELLED_TURN_CAPABILITY],
                parent_id=root.task_id,
                labels={rules.OWNER_LABEL: caller.subject},
                submitted_by=caller.subject,
            )
            turn, _ = await self.tasks.submit(spec)
            await self.tasks.cancel(CancelInput(task_id=turn.task_id, reason=reason, actor=caller.subject))
        return a2a_task(await self._turns(params.id, caller))

    # ------------------------------------------------------------ not supported

    async def on_create_task_push_notification_config(
        self, params: a2a.TaskPushNotificationConfig, context: ServerCallContext
    ) -> a2a.TaskPushNotificationConfig:
        raise a2a_errors.PushNotificationNotSupportedError()

    async def on_get_task_push_notification_config(
        self, params: a2a.GetTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> a2a.TaskPushNotificationConfig:
        raise a2a_errors.PushNotificationNotSupportedError()

    async def on_list_task_push_notification_configs(
        self, params: a2a.ListTaskPushNotificationConfigsRequest, context: ServerCallContext
    ) -> a2a.ListTaskPushNotificationConfigsResponse:
        raise a2a_errors.PushNotificationNotSupportedError()

    async def on_delete_task_push_notification_config(
        self, params: a2a.DeleteTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> None:
        raise a2a_errors.PushNotificationNotSupportedError()

    async def on_get_extended_agent_card(
        self, params: a2a.GetExtendedAgentCardRequest, context: ServerCallContext
    ) -> a2a.AgentCard:
        return await self.card.build()
