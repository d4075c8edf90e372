"""The TaskQueue's session RPCs (CreateSession, GetSession, ListSessions, CloseSession,
CancelSession): protobuf <-> the core's Sessions, mixed into the TaskQueue servicer."""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc

from ..errors import InvalidArgument
from ..models.common import check_id, decode_page_token, encode_page_token, page_size
from ..models.sessions import CreateSessionInput, EndSessionInput, Session, SessionFilter, SessionStatus
from ..pb import tasks_pb2 as pb
from ..security.identity import attributed
from .convert import dict_to_struct, enum_value, set_us, struct_to_dict, ts_us
from .errors import rpc

if TYPE_CHECKING:
    from ..core.sessions import Sessions

STATUS_TO_PB = {s: getattr(pb, f"SESSION_STATUS_{s.name}") for s in SessionStatus}
PB_TO_STATUS = {v: k for k, v in STATUS_TO_PB.items()}


def session_out(s: Session) -> pb.Session:
    msg = pb.Session(
        session_id=s.session_id,
        name=s.name,
        parent_session_id=s.parent_session_id or "",
        initiated_by=s.initiated_by,
        labels=s.labels,
        status=STATUS_TO_PB[s.status],
        status_reason=s.status_reason,
        max_tasks=s.max_tasks or 0,
        summary=s.summary,
        task_counts=s.counts,
        progress=s.progress,
    )
    if s.context:
        msg.context.CopyFrom(dict_to_struct(s.context))
    for name in ("deadline", "created_at", "updated_at", "closed_at", "finished_at"):
        value = getattr(s, name)
        if value is not None:
            set_us(getattr(msg, name), value)
    return msg


class SessionRpcs:
    sessions: Sessions

    @rpc
    async def CreateSession(
        self, request: pb.CreateSessionRequest, context: grpc.aio.ServicerContext
    ) -> pb.Session:
        try:
            ctx = struct_to_dict(request, "context")
        except ValueError:
            raise InvalidArgument("context", "numbers must be finite (no NaN or infinity)") from None
        inp = CreateSessionInput(
            session_id=request.session_id or None,
            name=request.name,
            parent_session_id=request.parent_session_id or None,
            initiated_by=request.initiated_by,
            context=ctx,
            labels=dict(request.labels),
            deadline=ts_us(request, "deadline"),
            max_tasks=request.max_tasks or None,
        )
        return session_out(await self.sessions.create(attributed(inp, "initiated_by")))

    @rpc
    async def GetSession(
        self, request: pb.GetSessionRequest, context: grpc.aio.ServicerContext
    ) -> pb.Session:
        return session_out(await self.sessions.get(check_id(request.session_id, "session_id")))

    @rpc
    async def ListSessions(
        self, request: pb.ListSessionsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListSessionsResponse:
        token = decode_page_token(request.page_token, 2)
        if token is not None and (type(token[0]) is not int or type(token[1]) is not str):
            raise InvalidArgument("page_token", "is not a token this broker issued")
        status = enum_value(pb.SessionStatus, request.status, "status")
        flt = SessionFilter(
            status=PB_TO_STATUS.get(status),
            initiated_by=request.initiated_by,
            parent_session_id=request.parent_session_id,
            page_size=page_size(request.page_size),
            after=(token[0], token[1]) if token else None,
        )
        found, last = await self.sessions.list(flt)
        return pb.ListSessionsResponse(
            sessions=[session_out(s) for s in found],
            next_page_token=encode_page_token(*last) if last else "",
        )

    @rpc
    async def CloseSession(
        self, request: pb.CloseSessionRequest, context: grpc.aio.ServicerContext
    ) -> pb.Session:
        inp = EndSessionInput(session_id=request.session_id, summary=request.summary)
        return session_out(await self.sessions.close(inp))

    @rpc
    async def CancelSession(
        self, request: pb.CancelSessionRequest, context: grpc.aio.ServicerContext
    ) -> pb.CancelSessionResponse:
        inp = EndSessionInput(session_id=request.session_id, reason=request.reason, actor=request.actor)
        session, cancelled = await self.sessions.cancel(attributed(inp, "actor"))
        return pb.CancelSessionResponse(session=session_out(session), cancelled_task_ids=cancelled)
