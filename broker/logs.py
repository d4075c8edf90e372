"""Structured logging: one JSON object per line (or plain text), with extras as fields."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in _extras(record).items():
            out[key] = value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out)


def _extras(record: logging.LogRecord) -> dict[str, object]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


class TextFormatter(logging.Formatter):
    """One line: time, level, logger, message, then the same fields as JSON as key=value."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = " ".join(f"{k}={json.dumps(v) if isinstance(v, str) and (' ' in v or not v) else v}"
                          for k, v in _extras(record).items())  # fmt: skip
        return f"{line} {fields}" if fields else line


# Libraries whose DEBUG lines drown the broker's own (--log-level-libs sets theirs).
LIBRARIES = ("aiosqlite", "grpc", "asyncio", "aiohttp", "psycopg", "prometheus_client", "mcp", "httpx")


def resolve_format(fmt: str) -> str:
    """``auto``: text for a person at a terminal, JSON for a log collector (stderr not a terminal)."""
    if fmt != "auto":
        return fmt
    return "text" if sys.stderr.isatty() else "json"


def setup_logging(level: str, fmt: str, libs_level: str = "WARNING") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if resolve_format(fmt) == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in LIBRARIES:
        logging.getLogger(name).setLevel(libs_level)
    for name in GONE_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, ClientGone) for f in logger.filters):
            logger.addFilter(ClientGone())


# Where grpc's ExecuteBatchError surfaces when a client goes away: grpc's server code logs it
# ("ExecuteBatchError raised in core by servicer method [...]"), or asyncio does, as a task
# exception never retrieved (older grpc releases).
GONE_LOGGERS = ("grpc._cython.cygrpc", "asyncio")


class ClientGone(logging.Filter):
    """grpc logs an ``ExecuteBatchError`` at ERROR, with a traceback, when a write to a client
    fails because the client went away before grpc saw its call end (a subscriber killed or cut
    off mid-stream): nothing failed on the broker's side, and the stream's end is logged anyway
    (``stream closed``). Such a line becomes one at DEBUG on ``broker.rpc``, without the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None or type(exc).__name__ != "ExecuteBatchError":
            return True
        logging.getLogger("broker.rpc").debug(
            "a client went away during a call: %s (%s)", record.getMessage(), exc
        )
        return False


class Throttled:
    """At most one log line per ``period_s`` for a kind of event that can come in floods (e.g.
    refused malformed requests); the next line says how many were left out in between."""

    def __init__(
        self,
        logger: logging.Logger,
        period_s: float = 10.0,
        level: int = logging.WARNING,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.period_s = period_s
        self.level = level
        self.clock = clock
        self._next = float("-inf")
        self._suppressed = 0

    def log(self, msg: str, *args: object) -> bool:
        """Log ``msg`` now, or count it as suppressed; True when it was logged."""
        now = self.clock()
        if now < self._next:
            self._suppressed += 1
            return False
        if self._suppressed:
            msg += " (%d more like it in the last %.0f s not logged)"
            args = (*args, self._suppressed, self.period_s)
        self._suppressed = 0
        self._next = now + self.period_s
        self.logger.log(self.level, msg, *args)
        return True
