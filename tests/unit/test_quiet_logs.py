"""#22.21: a client that goes away mid-stream is not an error of the broker's: grpc's
ExecuteBatchError (a write to the gone client failing) is logged at DEBUG without a traceback, not at
ERROR with one. grpc raises it from a race in its core that a test cannot provoke at will, so the
record is made here as grpc's server code makes it (and the servicer's wrapper is given the error
as grpc's calls raise it)."""

from __future__ import annotations

import io
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from grpc._cython.cygrpc import ExecuteBatchError

from broker.logs import setup_logging
from broker.servicers.errors import stream_rpc


@pytest.fixture
def broker_logging() -> Iterator[io.StringIO]:
    """The broker's logging (as ``serve`` sets it up, writing here), undone afterwards."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    loggers = {n: logging.getLogger(n) for n in ("grpc", "asyncio", "grpc._cython.cygrpc")}
    levels = {n: (lg.level, lg.filters[:]) for n, lg in loggers.items()}
    setup_logging("DEBUG", "text")
    out = io.StringIO()
    root.handlers[0].setStream(out)  # type: ignore[attr-defined]
    try:
        yield out
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
        for n, lg in loggers.items():
            lg.setLevel(levels[n][0])
            lg.filters[:] = levels[n][1]


def _raise() -> None:
    raise ExecuteBatchError('Failed "execute_batch": (<grpc._cython.cygrpc.SendMessageOperation>,)')


def test_grpcs_execute_batch_error_is_a_debug_line_without_traceback(broker_logging: io.StringIO) -> None:
    grpc_log = logging.getLogger("grpc._cython.cygrpc")
    try:
        _raise()
    except ExecuteBatchError:  # as grpc's _handle_exceptions logs it
        grpc_log.exception(
            "ExecuteBatchError raised in core by servicer method [%s]", "/a2a.broker.v1.Messaging/Subscribe"
        )
    try:
        _raise()
    except ExecuteBatchError as exc:  # as asyncio logs a task exception never retrieved
        logging.getLogger("asyncio").error("Task exception was never retrieved", exc_info=exc)
    grpc_log.error("Unexpected [ValueError] raised by servicer method [/x]")  # others stay
    err = broker_logging.getvalue()
    assert "Traceback" not in err and " ERROR grpc._cython.cygrpc: ExecuteBatchError" not in err, err
    assert err.count("DEBUG broker.rpc: a client went away during a call") == 2, err
    assert "ERROR grpc._cython.cygrpc: Unexpected [ValueError]" in err


class Context:
    def __init__(self) -> None:
        self.aborted: tuple[Any, ...] | None = None

    async def abort(self, *args: Any) -> None:
        self.aborted = args


async def test_a_stream_whose_client_went_away_ends_quietly(caplog: pytest.LogCaptureFixture) -> None:
    @stream_rpc
    async def handler(self: Any, request: Any, context: Any) -> AsyncIterator[int]:
        yield 1
        _raise()  # e.g. reading the next request of a client that is gone

    context = Context()
    got = [x async for x in handler(None, None, context)]
    assert got == [1]
    assert context.aborted is None
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.records
