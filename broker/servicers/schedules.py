"""The TaskQueue's schedule RPCs (CreateSchedule, GetSchedule, ListSchedules, PauseSchedule,
ResumeSchedule, DeleteSchedule, TriggerSchedule): protobuf <-> the core's Schedules, mixed into the
TaskQueue servicer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import grpc

from ..errors import InvalidArgument
from ..models.common import check_id, decode_page_token, encode_page_token, page_size
from ..models.schedules import (
    CreateScheduleInput,
    MissedPolicy,
    OverlapPolicy,
    Schedule,
    ScheduleFilter,
    ScheduleSpecInput,
    ScheduleStatus,
)
from ..models.tasks import Task
from ..pb import tasks_pb2 as pb
from ..security.identity import attributed
from .convert import dur_us, enum_value, set_us, ts_us
from .errors import rpc
from .tasks_pb import spec_in, spec_into

if TYPE_CHECKING:
    from ..core.schedules import Schedules

MISSED_TO_PB = {p: getattr(pb, f"MISSED_FIRING_POLICY_{p.name}") for p in MissedPolicy}
PB_TO_MISSED = {v: k for k, v in MISSED_TO_PB.items()}
OVERLAP_TO_PB = {p: getattr(pb, f"OVERLAP_POLICY_{p.name}") for p in OverlapPolicy}
PB_TO_OVERLAP = {v: k for k, v in OVERLAP_TO_PB.items()}
STATUS_TO_PB = {s: getattr(pb, f"SCHEDULE_STATUS_{s.name}") for s in ScheduleStatus}
PB_TO_STATUS = {v: k for k, v in STATUS_TO_PB.items()}


def _overlap(value: int, where: str) -> OverlapPolicy | None:
    return PB_TO_OVERLAP.get(enum_value(pb.OverlapPolicy, value, where))


def spec_of(msg: pb.ScheduleSpec) -> dict[str, Any]:
    """A ScheduleSpec as the fields of ScheduleSpecInput (validated by pydantic after)."""
    if not msg.HasField("task"):
        raise InvalidArgument("spec.task", "is required: the task each firing submits")
    out: dict[str, Any] = {
        "cron": msg.cron.strip(),
        "time_zone": msg.time_zone,
        "interval_us": dur_us(msg, "interval"),
        "start_at": ts_us(msg, "start_time", "spec.start_time"),
        "end_at": ts_us(msg, "end_time", "spec.end_time"),
        "task": spec_in(msg.task, "spec.task"),
        "created_by": msg.created_by,
    }
    for name, field in (("jitter_us", "jitter"), ("misfire_grace_us", "misfire_grace")):
        value = dur_us(msg, field)
        if value is not None:
            out[name] = value
    if msg.max_catchup:
        out["max_catchup"] = msg.max_catchup
    missed = PB_TO_MISSED.get(enum_value(pb.MissedFiringPolicy, msg.missed, "spec.missed"))
    if missed is not None:
        out["missed"] = missed
    overlap = _overlap(msg.overlap, "spec.overlap")
    if overlap is not None:
        out["overlap"] = overlap
    return out


def spec_out(spec: ScheduleSpecInput, msg: pb.ScheduleSpec) -> None:
    msg.cron = spec.cron
    msg.time_zone = spec.time_zone
    for field, us in (
        ("interval", spec.interval_us),
        ("start_time", spec.start_at),
        ("end_time", spec.end_at),
        ("jitter", spec.jitter_us),
        ("misfire_grace", spec.misfire_grace_us),
    ):
        if us is not None:
            set_us(getattr(msg, field), us)
    spec_into(msg.task, spec.task)
    msg.missed = MISSED_TO_PB[spec.missed]
    msg.max_catchup = spec.max_catchup
    msg.overlap = OVERLAP_TO_PB[spec.overlap]
    msg.created_by = spec.created_by


def schedule_out(s: Schedule) -> pb.Schedule:
    msg = pb.Schedule(
        schedule_id=s.schedule_id,
        status=STATUS_TO_PB[s.status],
        note=s.note,
        last_task_id=s.last_task_id or "",
        fired_count=s.fired_count,
        skipped_count=s.skipped_count,
        last_error=s.last_error,
    )
    spec_out(s.spec, msg.spec)
    for field, us in (
        ("next_fire_time", s.next_fire_at),
        ("next_run_time", s.next_due_at),
        ("last_fire_time", s.last_fire_at),
        ("created_at", s.created_at),
        ("updated_at", s.updated_at),
    ):
        if us is not None:
            set_us(getattr(msg, field), us)
    return msg


class ScheduleRpcs:
    schedules: Schedules

    if TYPE_CHECKING:

        def _task(self, t: Task, now: int | None = None) -> pb.Task: ...  # the TaskQueue servicer's

    @rpc
    async def CreateSchedule(
        self, request: pb.CreateScheduleRequest, context: grpc.aio.ServicerContext
    ) -> pb.Schedule:
        inp = CreateScheduleInput.model_validate(
            {
                "schedule_id": request.schedule_id or None,
                "spec": spec_of(request.spec),
                "paused": request.paused,
            }
        )
        spec = attributed(inp.spec, "created_by")
        spec = spec.model_copy(update={"task": attributed(spec.task, "submitted_by")})
        return schedule_out(await self.schedules.create(inp.model_copy(update={"spec": spec})))

    @rpc
    async def GetSchedule(
        self, request: pb.GetScheduleRequest, context: grpc.aio.ServicerContext
    ) -> pb.Schedule:
        return schedule_out(await self.schedules.get(check_id(request.schedule_id, "schedule_id")))

    @rpc
    async def ListSchedules(
        self, request: pb.ListSchedulesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListSchedulesResponse:
        token = decode_page_token(request.page_token, 1)
        if token is not None and type(token[0]) is not str:
            raise InvalidArgument("page_token", "is not a token this broker issued")
        status = enum_value(pb.ScheduleStatus, request.status, "status")
        flt = ScheduleFilter(
            status=PB_TO_STATUS.get(status),
            page_size=page_size(request.page_size),
            after=token[0] if token else None,
        )
        found, last = await self.schedules.list(flt)
        return pb.ListSchedulesResponse(
            schedules=[schedule_out(s) for s in found],
            next_page_token=encode_page_token(last) if last else "",
        )

    @rpc
    async def PauseSchedule(
        self, request: pb.PauseScheduleRequest, context: grpc.aio.ServicerContext
    ) -> pb.Schedule:
        if len(request.note) > 1024:
            raise InvalidArgument("note", "must be at most 1024 characters")
        schedule_id = check_id(request.schedule_id, "schedule_id")
        return schedule_out(await self.schedules.pause(schedule_id, request.note))

    @rpc
    async def ResumeSchedule(
        self, request: pb.ResumeScheduleRequest, context: grpc.aio.ServicerContext
    ) -> pb.Schedule:
        return schedule_out(await self.schedules.resume(check_id(request.schedule_id, "schedule_id")))

    @rpc
    async def DeleteSchedule(
        self, request: pb.DeleteScheduleRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteScheduleResponse:
        await self.schedules.delete(check_id(request.schedule_id, "schedule_id"))
        return pb.DeleteScheduleResponse()

    @rpc
    async def TriggerSchedule(
        self, request: pb.TriggerScheduleRequest, context: grpc.aio.ServicerContext
    ) -> pb.TriggerScheduleResponse:
        schedule_id = check_id(request.schedule_id, "schedule_id")
        fired = await self.schedules.trigger(schedule_id, _overlap(request.overlap, "overlap"))
        resp = pb.TriggerScheduleResponse(skipped=fired.skipped)
        if fired.tasks:
            resp.task.CopyFrom(self._task(fired.tasks[0]))
        if fired.schedule is not None:
            resp.schedule.CopyFrom(schedule_out(fired.schedule))
        return resp
