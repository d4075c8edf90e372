"""The bare gRPC baseline server: ``python -m bench.echo --port N``.

It serves, with grpc.aio and no storage at all:

- ``/bench.Echo/Unary``: bytes in, the same bytes out;
- ``/bench.Echo/Stream``: request ``b"<count>:<size>"``, streams ``count`` messages of ``size``
  bytes, one per frame;
- the broker's own ``Messaging`` service, in memory: Send/SendBatch put messages on the
  recipient's queue and answer at once; Subscribe pushes them in batches (as the broker does);
  Ack answers at once. So the benchmark client runs unchanged against it, and each broker figure
  has a "what gRPC itself allows here" twin.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
from collections import deque
from collections.abc import AsyncIterator

import grpc

from broker.pb import messaging_pb2 as pb
from broker.pb import messaging_pb2_grpc as pb_grpc


def _identity(b: bytes) -> bytes:
    return b


class EchoMessaging(pb_grpc.MessagingServicer):
    def __init__(self) -> None:
        self._ids = itertools.count()
        self._queues: dict[str, deque[pb.Message]] = {}
        self._wake: dict[str, asyncio.Event] = {}

    def _put(self, req: pb.SendRequest) -> str:
        mid = f"m{next(self._ids)}"
        agent = req.target.agent_id
        self._queues.setdefault(agent, deque()).append(
            pb.Message(
                message_id=mid, sender_id=req.sender_id, recipient_id=agent, payload=req.payload, attempt=1
            )
        )
        ev = self._wake.get(agent)
        if ev is not None:
            ev.set()
        return mid

    async def Send(self, request: pb.SendRequest, context: grpc.aio.ServicerContext) -> pb.SendResponse:
        return pb.SendResponse(message_ids=[self._put(request)])

    async def Publish(
        self, request_iterator: AsyncIterator[pb.PublishRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.PublishResponse]:
        await context.send_initial_metadata((("a2a-publish-window", "1000"),))
        async for req in request_iterator:
            yield pb.PublishResponse(sequence=req.sequence, message_ids=[self._put(req.message)])

    async def SendBatch(
        self, request: pb.SendBatchRequest, context: grpc.aio.ServicerContext
    ) -> pb.SendBatchResponse:
        return pb.SendBatchResponse(
            results=[pb.SendResponse(message_ids=[self._put(r)]) for r in request.messages]
        )

    async def Subscribe(
        self, request: pb.SubscribeRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.SubscribeResponse]:
        agent = request.agent_id
        queue = self._queues.setdefault(agent, deque())
        ev = self._wake.setdefault(agent, asyncio.Event())
        batch = request.max_batch or 100
        await context.send_initial_metadata(())
        while True:
            ev.clear()
            if queue:
                n = min(batch, len(queue))
                yield pb.SubscribeResponse(messages=[queue.popleft() for _ in range(n)])
                continue
            await ev.wait()

    async def Consume(
        self, request_iterator: AsyncIterator[pb.ConsumeRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ConsumeResponse]:
        """Subscribe's deliveries, and each ack request confirmed at once (nothing to commit)."""
        requests = aiter(request_iterator)
        first = await anext(requests)
        agent = first.subscribe.agent_id
        batch = first.subscribe.max_batch or 100
        queue = self._queues.setdefault(agent, deque())
        ev = self._wake.setdefault(agent, asyncio.Event())
        confirms: deque[pb.ConsumeResponse] = deque()

        async def read() -> None:
            async for req in requests:
                confirms.append(
                    pb.ConsumeResponse(
                        confirm=pb.ConsumeConfirm(sequence=req.sequence, acked=len(req.ack_ids))
                    )
                )
                ev.set()

        reader = asyncio.ensure_future(read())
        await context.send_initial_metadata(())
        try:
            while True:
                ev.clear()
                if confirms:
                    yield confirms.popleft()
                    continue
                if queue:
                    n = min(batch, len(queue))
                    yield pb.ConsumeResponse(messages=[queue.popleft() for _ in range(n)])
                    continue
                await ev.wait()
        finally:
            reader.cancel()

    async def Ack(self, request: pb.AckRequest, context: grpc.aio.ServicerContext) -> pb.AckResponse:
        return pb.AckResponse(acked=len(request.message_ids))


async def _stream(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
    count, size = (int(x) for x in request.split(b":"))
    body = b"x" * size
    for _ in range(count):
        yield body


async def _unary(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return request


async def serve(port: int) -> None:
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ("grpc.max_send_message_length", 64 * 1024 * 1024),
            ("grpc.so_reuseport", 0),
        ]
    )
    generic = grpc.method_handlers_generic_handler(
        "bench.Echo",
        {
            "Unary": grpc.unary_unary_rpc_method_handler(
                _unary, request_deserializer=_identity, response_serializer=_identity
            ),
            "Stream": grpc.unary_stream_rpc_method_handler(
                _stream, request_deserializer=_identity, response_serializer=_identity
            ),
        },
    )
    server.add_generic_rpc_handlers((generic,))
    pb_grpc.add_MessagingServicer_to_server(EchoMessaging(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    try:
        asyncio.run(serve(args.port))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
