"""TaskQueue servicer (every RPC answers UNIMPLEMENTED until the TaskQueue work lands)."""

from __future__ import annotations

from ..core.taskqueue import TaskQueue
from ..pb import tasks_pb2_grpc as pb_grpc


class TaskQueueServicer(pb_grpc.TaskQueueServicer):
    def __init__(self, queue: TaskQueue) -> None:
        self.queue = queue
