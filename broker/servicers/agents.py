"""AgentRegistry servicer: protobuf <-> registry calls."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from ..clock import s_to_us
from ..core.registry import Registry
from ..errors import InvalidArgument
from ..models.agents import (
    Agent,
    AgentEvent,
    AgentEventType,
    AgentFilter,
    AgentRecord,
    AgentStatus,
    Exposure,
    HeartbeatInput,
    RegisterInput,
)
from ..models.common import check_id, decode_page_token, encode_page_token, page_size
from ..pb import agents_pb2 as pb
from ..pb import agents_pb2_grpc as pb_grpc
from .convert import dict_to_struct, dur, enum_value, set_us, struct_to_dict, ts
from .errors import rpc, stream_rpc

STATUS_TO_PB = {
    AgentStatus.AVAILABLE: pb.AGENT_STATUS_AVAILABLE,
    AgentStatus.BUSY: pb.AGENT_STATUS_BUSY,
    AgentStatus.MAINTENANCE: pb.AGENT_STATUS_MAINTENANCE,
    AgentStatus.OFFLINE: pb.AGENT_STATUS_OFFLINE,
    AgentStatus.DEREGISTERED: pb.AGENT_STATUS_OFFLINE,
}
PB_TO_STATUS = {v: k for k, v in STATUS_TO_PB.items() if k != AgentStatus.DEREGISTERED}
EVENT_TO_PB = {
    AgentEventType.REGISTERED: pb.AGENT_EVENT_TYPE_REGISTERED,
    AgentEventType.ONLINE: pb.AGENT_EVENT_TYPE_ONLINE,
    AgentEventType.OFFLINE: pb.AGENT_EVENT_TYPE_OFFLINE,
    AgentEventType.DEREGISTERED: pb.AGENT_EVENT_TYPE_DEREGISTERED,
    AgentEventType.UPDATED: pb.AGENT_EVENT_TYPE_UPDATED,
}


def record_into(msg: pb.AgentRecord, r: AgentRecord) -> None:
    msg.tasks_completed = r.tasks_completed
    msg.tasks_failed = r.tasks_failed
    msg.success_rate = r.success_rate
    set_us(msg.mean_run_time, r.mean_run_us)
    set_us(msg.p95_run_time, r.p95_run_us)
    set_us(msg.window, s_to_us(r.window_s))


EXPOSURE_TO_PB = {
    Exposure.BOTH: pb.EXPOSURE_BOTH,
    Exposure.BROKER: pb.EXPOSURE_BROKER,
    Exposure.A2A: pb.EXPOSURE_A2A,
}
PB_TO_EXPOSURE = {pb.EXPOSURE_UNSPECIFIED: Exposure.BOTH, **{v: k for k, v in EXPOSURE_TO_PB.items()}}


def agent_to_pb(a: Agent) -> pb.Agent:
    msg = pb.Agent(
        agent_id=a.agent_id,
        name=a.name,
        agent_type=a.agent_type,
        capabilities=a.capabilities,
        max_concurrent_tasks=a.max_concurrent_tasks,
        current_task_count=a.current_task_count,
        endpoint=a.endpoint,
        labels=a.labels,
        metadata=dict_to_struct(a.metadata),
        status=STATUS_TO_PB[a.status],
        registered_at=ts(a.registered_at),
        updated_at=ts(a.updated_at),
        last_heartbeat_at=ts(a.last_heartbeat_at),
    )
    if a.reported_free_capacity is not None:
        msg.reported_free_capacity = a.reported_free_capacity
    msg.exposure = EXPOSURE_TO_PB[a.exposure]
    if a.capability_descriptions:
        msg.capability_descriptions.update(a.capability_descriptions)
    return msg


def _metadata(request: pb.RegisterRequest) -> dict[str, Any]:
    try:
        return struct_to_dict(request, "metadata")
    except ValueError:  # NaN or infinity: a Struct that has no JSON form
        raise InvalidArgument("metadata", "numbers must be finite (no NaN or infinity)") from None


def _status_filter(value: int, field: str) -> AgentStatus | None:
    return PB_TO_STATUS.get(enum_value(pb.AgentStatus, value, field))


class AgentRegistryServicer(pb_grpc.AgentRegistryServicer):
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        s = registry.settings
        self._interval = dur(s.heartbeat_interval_s)
        self._timeout = dur(s.liveness_timeout)

    @rpc
    async def Register(
        self, request: pb.RegisterRequest, context: grpc.aio.ServicerContext
    ) -> pb.RegisterResponse:
        inp = RegisterInput(
            agent_id=request.agent_id or None,
            name=request.name,
            agent_type=request.agent_type or "worker",
            capabilities=list(request.capabilities),
            max_concurrent_tasks=request.max_concurrent_tasks,
            endpoint=request.endpoint,
            labels=dict(request.labels),
            metadata=_metadata(request),
            exposure=PB_TO_EXPOSURE[enum_value(pb.Exposure, request.exposure, "exposure")],
            capability_descriptions=dict(request.capability_descriptions),
        )
        agent, created = await self.registry.register(inp)
        return pb.RegisterResponse(
            agent=agent_to_pb(agent),
            heartbeat_interval=self._interval,
            liveness_timeout=self._timeout,
            created=created,
        )

    @rpc
    async def Heartbeat(
        self, request: pb.HeartbeatRequest, context: grpc.aio.ServicerContext
    ) -> pb.HeartbeatResponse:
        status = _status_filter(request.status, "status")
        if status == AgentStatus.OFFLINE:
            from ..errors import InvalidArgument

            raise InvalidArgument("status", "OFFLINE is set by the broker only")
        inp = HeartbeatInput(
            agent_id=request.agent_id,
            status=status,
            free_capacity=request.free_capacity if request.HasField("free_capacity") else None,
        )
        agent = await self.registry.heartbeat(inp)
        return pb.HeartbeatResponse(
            agent=agent_to_pb(agent), heartbeat_interval=self._interval, liveness_timeout=self._timeout
        )

    @rpc
    async def Deregister(
        self, request: pb.DeregisterRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeregisterResponse:
        gone = await self.registry.deregister(check_id(request.agent_id, "agent_id"))
        return pb.DeregisterResponse(
            requeued_tasks=len(gone.requeued_tasks), released_messages=gone.released_messages
        )

    @rpc
    async def GetAgent(self, request: pb.GetAgentRequest, context: grpc.aio.ServicerContext) -> pb.Agent:
        agent = await self.registry.get(check_id(request.agent_id, "agent_id"))
        msg = agent_to_pb(agent)
        record_into(msg.record, (await self.registry.records([agent.agent_id]))[agent.agent_id])
        return msg

    @rpc
    async def ListAgents(
        self, request: pb.ListAgentsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListAgentsResponse:
        token = decode_page_token(request.page_token, 1)
        if token is not None and not isinstance(token[0], str):
            raise InvalidArgument("page_token", "is not a token this broker issued")
        flt = AgentFilter(
            status=_status_filter(request.status, "status"),
            agent_type=request.agent_type,
            capability=request.capability,
            page_size=page_size(request.page_size),
            after=token[0] if token else None,
        )
        agents, last = await self.registry.list(flt)
        records = await self.registry.records([a.agent_id for a in agents])
        out = []
        for a in agents:
            msg = agent_to_pb(a)
            record_into(msg.record, records[a.agent_id])
            out.append(msg)
        return pb.ListAgentsResponse(
            agents=out,
            next_page_token=encode_page_token(last) if last else "",
        )

    @stream_rpc
    async def WatchAgents(
        self, request: pb.WatchAgentsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.AgentEvent]:
        ids = set(request.agent_ids)
        cap = request.capability

        def accept(ev: AgentEvent) -> bool:
            return (not ids or ev.agent.agent_id in ids) and (not cap or cap in ev.agent.capabilities)

        # Subscribe before the snapshot so no event falls between the two.
        with self.registry.events.watch(accept) as watcher:
            # Initial metadata tells the client the watch is live: nothing after it is missed.
            await context.send_initial_metadata(())
            if request.include_snapshot:
                after = None
                while True:
                    agents, after = await self.registry.list(
                        AgentFilter(capability=cap, page_size=1000, after=after)
                    )
                    for a in agents:
                        if not ids or a.agent_id in ids:
                            yield pb.AgentEvent(
                                type=pb.AGENT_EVENT_TYPE_REGISTERED,
                                agent=agent_to_pb(a),
                                time=ts(a.updated_at),
                            )
                    if after is None:
                        break
            while True:
                ev = await watcher.get()
                yield pb.AgentEvent(type=EVENT_TO_PB[ev.type], agent=agent_to_pb(ev.agent), time=ts(ev.time))
