"""The A2A request handler: a2a-sdk's ``RequestHandler`` interface answered by the task queue.

a2a-sdk's ``GrpcHandler`` serves ``lf.a2a.v1.A2AService`` and calls this handler; the protocol
(parsing, ``google.rpc.ErrorInfo`` with domain ``a2a-protocol.org``) is the SDK's. Here:

- ``SendMessage`` without a ``taskId`` submits a task (a *turn*, ``broker.domain.a2a_tasks``) for
  the skill of the A2A agent it was sent to (``/a2a/<skill>/`` on HTTP, the interface's
  ``tenant`` on gRPC), else the skill named in the message's (or request's) metadata ``skill``,
  else ``--a2a-default-skill``: any registered agent able to run it may take it. The
  ``contextId`` is its session (created implicitly; derived from the message id when absent,
  so a retry is the same task), the ``messageId`` its idempotency key. With a ``taskId``, the
  message answers a task waiting for input: a new turn, a child of the first.
- ``SendStreamingMessage`` and ``SubscribeToTask`` send the task as it is, then each status change
  and new artifact as the turns change, until it ends or waits for input. A subscriber that
  reconnects gets the current task first again.
- ``GetTask``, ``ListTasks`` (by its sender: an admin sees all; newest status first, filtered and
  counted by the tracker's index) and ``CancelTask`` (the running turn's holder is told on its
  stream, as for any cancellation).
- The four push-notification configuration operations (``push.py`` POSTs the notifications).

Where a2a-sdk's own mapping departs from the specification it is overridden here or in
``grpc.py`` (each place says so).
"""

from __future__ import annotations

import contextvars
import hashlib
import logging
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from a2a.server.context import ServerCallContext
from a2a.server.events.event_queue import Event
from a2a.server.request_handlers.request_handler import RequestHandler
from a2a.types import a2a_pb2 as a2a
from a2a.utils import errors as a2a_errors

from ..clock import now_us
from ..core.registry import Registry
from ..core.taskqueue import TaskQueue
from ..domain import a2a_tasks as rules
from ..domain import marks
from ..errors import AlreadyExists, BrokerError, InvalidArgument, NotFound
from ..models.a2a import A2AListQuery, PushConfig
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
from .push import Refused, UrlPolicy
from .tracker import Tracker, stream_body

log = logging.getLogger("broker.a2a")

P = ParamSpec("P")
R = TypeVar("R")
ANONYMOUS = "anonymous"
CANCELLED_TURN_CAPABILITY = "a2a.cancelled-turn"  # a turn that records a cancellation: nobody runs it
MAX_LIST_PAGE = 100
DEFAULT_LIST_PAGE = 50
MAX_PUSH_CONFIGS = 10  # per task and caller
# The A2A agent a request was sent to over HTTP (``/a2a/<target>/``): a skill, or ``@<agent id>``.
# On gRPC the same name comes as the request's ``tenant``.
TARGET: contextvars.ContextVar[str] = contextvars.ContextVar("a2a_target", default="")


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


def _target(context: ServerCallContext | None) -> str:
    return TARGET.get() or (context.tenant if context is not None else "")


class BrokerA2AHandler(RequestHandler):
    def __init__(
        self,
        tasks: TaskQueue,
        registry: Registry,
        card: Card,
        default_skill: str = "",
        push_policy: UrlPolicy | None = None,
        queued: Callable[[], None] = lambda: None,
    ) -> None:
        self.tasks = tasks
        self.registry = registry
        self.card = card
        self.default_skill = default_skill
        self.push_policy = push_policy or UrlPolicy("")
        self.tracker = Tracker(tasks, self._turns_by_id, queued)

    async def _turns_by_id(self, task_id: str) -> list[Turn]:
        return await self._turns_of(await self.tasks.get(task_id))

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
        length = _history_length(params)
        turns = await self._turns(params.id, _Caller())
        return a2a_task(turns, length)

    @_errors
    async def on_list_tasks(
        self, params: a2a.ListTasksRequest, context: ServerCallContext
    ) -> a2a.ListTasksResponse:
        caller = _Caller()
        size = params.page_size if params.HasField("page_size") else DEFAULT_LIST_PAGE
        if not 1 <= size <= MAX_LIST_PAGE:
            raise a2a_errors.InvalidParamsError(
                f"page_size: must be between 1 and {MAX_LIST_PAGE}, got {size}"
            )
        length = _history_length(params)
        after = None
        if params.page_token:
            token = decode_page_token(params.page_token, 2)
            if token is None or type(token[0]) is not int or type(token[1]) is not str:
                raise a2a_errors.InvalidParamsError("page_token: is not a token this broker issued")
            after = (token[0], token[1])
        query = A2AListQuery(
            owner=None if caller.admin else caller.subject,
            context_id=params.context_id,
            state=a2a.TaskState.Name(params.status) if params.status else "",
            since_us=(
                params.status_timestamp_after.ToMicroseconds()
                if params.HasField("status_timestamp_after")
                else None
            ),
            after=after,
            limit=size + 1,  # one more than asked: whether a next page exists
        )
        await self.tracker.flush()  # the changes committed so far are in the index
        entries, total = await self.tasks.storage.a2a_list(query)
        more = len(entries) > size
        entries = entries[:size]
        out = a2a.ListTasksResponse(page_size=size, total_size=total)
        for entry in entries:
            try:
                root = await self.tasks.get(entry.task_id)
            except NotFound:  # purged since it was indexed
                continue
            out.tasks.append(a2a_task(await self._turns_of(root), length, params.include_artifacts))
        last = entries[-1] if more else None  # the last page says so: no token
        out.next_page_token = encode_page_token(last.status_at, last.task_id) if last else ""
        return out

    # ------------------------------------------------------------ sending

    async def _send(self, params: a2a.SendMessageRequest, context: ServerCallContext | None = None) -> str:
        """Submit the message as a turn; the A2A task's id."""
        msg, caller = params.message, _Caller()
        if not msg.message_id:
            raise a2a_errors.InvalidParamsError("message.message_id: required")
        if msg.role != a2a.ROLE_USER:
            raise a2a_errors.InvalidParamsError(
                "message.role: required, and must be ROLE_USER (a message from the client)"
            )
        if not msg.parts:
            raise a2a_errors.InvalidParamsError("message.parts: at least one part is required")
        _history_length(params.configuration)
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
            await self.tracker.project(root.task_id)
            return root.task_id
        required = await self._route(params, _target(context))
        digest = hashlib.sha256(f"{caller.subject}\0{msg.message_id}".encode()).hexdigest()[:24]
        context_id = msg.context_id or f"ctx-{digest}"
        spec = turn_spec(
            msg, caller.subject, key, context_id, [], required_capabilities=required, session_id=context_id
        )
        task, duplicate = await self.tasks.submit(spec)
        if not duplicate:
            log.info("a2a task submitted", extra={"task_id": task.task_id, "capabilities": required})
        await self.tracker.track(task.task_id)
        return task.task_id

    async def _route(self, params: a2a.SendMessageRequest, target: str = "") -> list[str]:
        """The capabilities a new A2A task requires: its skills (and, for a message naming an
        agent, that agent's mark), and the gateway's. Refused when nobody could run it."""
        skills, named = skills_of(params), agent_of(params)
        if target.startswith("@"):
            named = target[1:]
        elif target:
            skills = [target]
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
        if self.default_skill:
            return [self.default_skill]
        skills = sorted(await self.card.offered())
        if len(skills) == 1:
            return skills
        if not skills:
            raise a2a_errors.InvalidParamsError("message: no agent offers a skill through A2A yet")
        raise a2a_errors.InvalidParamsError(
            "message: this is the broker's own A2A agent and it offers several skills; send the"
            f" message to the skill's own agent ({self.card.target_urls(skills)}), or name it in"
            " message.metadata.skill"
        )

    @_errors
    async def on_message_send(
        self, params: a2a.SendMessageRequest, context: ServerCallContext
    ) -> a2a.Task | a2a.Message:
        answer = await self._directory(params)
        if answer is not None:
            return answer
        task_id = await self._send(params, context)
        caller = _Caller()
        await self._push_from_request(params, task_id, caller)
        if params.configuration.return_immediately:
            return a2a_task(await self._turns(task_id, caller), _history_length(params.configuration))
        async for _ in self._follow(task_id, caller):
            pass  # until it ends or waits for the caller
        # as it ended, history included (as much as asked for)
        return a2a_task(await self._turns(task_id, caller), _history_length(params.configuration))

    @_stream_errors
    async def on_message_send_stream(
        self, params: a2a.SendMessageRequest, context: ServerCallContext
    ) -> AsyncIterator[Event]:
        answer = await self._directory(params)
        if answer is not None:
            yield answer
            return
        task_id = await self._send(params, context)
        await self._push_from_request(params, task_id, _Caller())
        async for event in self._follow(task_id, _Caller()):
            yield event

    @_stream_errors
    async def on_subscribe_to_task(
        self, params: a2a.SubscribeToTaskRequest, context: ServerCallContext
    ) -> AsyncIterator[Event]:
        caller = _Caller()
        state = (await self._turns(params.id, caller))[-1].state
        if state in rules.FINAL:
            raise a2a_errors.UnsupportedOperationError(
                f"task {params.id!r} is {state}: it has ended, there is nothing to subscribe to"
            )
        async for event in self._follow(params.id, caller):
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

    # ------------------------------------------------------------ push notifications

    async def _push_from_request(self, params: a2a.SendMessageRequest, task_id: str, caller: _Caller) -> None:
        """A push configuration given with the message: set on the task it went into."""
        cfg = params.configuration
        if cfg.HasField("task_push_notification_config"):
            wanted = a2a.TaskPushNotificationConfig()
            wanted.CopyFrom(cfg.task_push_notification_config)
            wanted.task_id = task_id
            await self._set_push(wanted, caller)

    async def _set_push(
        self, params: a2a.TaskPushNotificationConfig, caller: _Caller
    ) -> a2a.TaskPushNotificationConfig:
        if not params.url:
            raise a2a_errors.InvalidParamsError("url: required (the webhook to POST notifications to)")
        if len(params.url) > 2048:
            raise a2a_errors.InvalidParamsError("url: at most 2048 characters")
        try:
            await self.push_policy.check(params.url)
        except Refused as exc:
            raise a2a_errors.InvalidParamsError(str(exc)) from None
        config_id = params.id or str(uuid.uuid4())
        if len(config_id) > 128:
            raise a2a_errors.InvalidParamsError("id: at most 128 characters")
        await self._turns(params.task_id, caller)  # TaskNotFoundError for a task the caller cannot see
        if not await self.tasks.storage.push_config_get(params.task_id, config_id):
            mine = [
                c
                for c in await self.tasks.storage.push_config_list(params.task_id, "", 1000)
                if c.owner == caller.subject
            ]
            if len(mine) >= MAX_PUSH_CONFIGS:
                raise a2a_errors.InvalidParamsError(
                    f"task_id: {params.task_id!r} already has {MAX_PUSH_CONFIGS} push configurations of yours"
                )
        auth = params.authentication
        stored = PushConfig(
            task_id=params.task_id,
            config_id=config_id,
            owner=caller.subject,
            url=params.url,
            token=params.token,
            auth_scheme=auth.scheme,
            auth_credentials=auth.credentials,
            created_at=now_us(),
        )
        # Under the tracker's lock: the task as it is now is the configuration's first notification,
        # and the index has caught up with it, so the next change is announced once.
        async with self.tracker.locked():
            view = await self.tracker.project_locked(params.task_id)
            await self.tasks.storage.push_config_save(stored, stream_body(view))
        self.tracker.queued()
        return _push_view(stored)

    async def _own_push(self, task_id: str, config_id: str, caller: _Caller) -> PushConfig:
        await self._turns(task_id, caller)
        found = await self.tasks.storage.push_config_get(task_id, config_id)
        if found is None or not (caller.admin or found.owner == caller.subject):
            raise a2a_errors.TaskNotFoundError(
                f"push configuration {config_id!r} of task {task_id!r} not found"
            )
        return found

    @_errors
    async def on_create_task_push_notification_config(
        self, params: a2a.TaskPushNotificationConfig, context: ServerCallContext
    ) -> a2a.TaskPushNotificationConfig:
        return await self._set_push(params, _Caller())

    @_errors
    async def on_get_task_push_notification_config(
        self, params: a2a.GetTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> a2a.TaskPushNotificationConfig:
        return _push_view(await self._own_push(params.task_id, params.id, _Caller()))

    @_errors
    async def on_list_task_push_notification_configs(
        self, params: a2a.ListTaskPushNotificationConfigsRequest, context: ServerCallContext
    ) -> a2a.ListTaskPushNotificationConfigsResponse:
        caller = _Caller()
        await self._turns(params.task_id, caller)
        size = params.page_size or DEFAULT_LIST_PAGE
        if not 1 <= size <= MAX_LIST_PAGE:
            raise a2a_errors.InvalidParamsError(f"page_size: must be between 1 and {MAX_LIST_PAGE}")
        after = ""
        if params.page_token:
            token = decode_page_token(params.page_token, 1)
            if token is None or type(token[0]) is not str:
                raise a2a_errors.InvalidParamsError("page_token: is not a token this broker issued")
            after = token[0]
        out = a2a.ListTaskPushNotificationConfigsResponse()
        while len(out.configs) < size:
            page = await self.tasks.storage.push_config_list(params.task_id, after, size)
            for c in page:
                after = c.config_id
                if caller.admin or c.owner == caller.subject:
                    out.configs.append(_push_view(c))
                    if len(out.configs) == size:
                        break
            if len(page) < size:
                after = ""
                break
        out.next_page_token = encode_page_token(after) if after and len(out.configs) == size else ""
        return out

    @_errors
    async def on_delete_task_push_notification_config(
        self, params: a2a.DeleteTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> None:
        caller = _Caller()
        await self._turns(params.task_id, caller)
        found = await self.tasks.storage.push_config_get(params.task_id, params.id)
        if found is not None and (caller.admin or found.owner == caller.subject):
            await self.tasks.storage.push_config_delete(params.task_id, params.id)
        # deleting what is not there (any more) is done: the operation is idempotent

    async def on_get_extended_agent_card(
        self, params: a2a.GetExtendedAgentCardRequest, context: ServerCallContext
    ) -> a2a.AgentCard:
        return await self.card.build()


def _history_length(params: Any) -> int | None:
    if not params.HasField("history_length"):
        return None
    if params.history_length < 0:
        raise a2a_errors.InvalidParamsError(f"history_length: must be 0 or more, got {params.history_length}")
    return int(params.history_length)


def _push_view(c: PushConfig) -> a2a.TaskPushNotificationConfig:
    out = a2a.TaskPushNotificationConfig(id=c.config_id, task_id=c.task_id, url=c.url, token=c.token)
    if c.auth_scheme:
        out.authentication.scheme = c.auth_scheme
        out.authentication.credentials = c.auth_credentials
    return out
