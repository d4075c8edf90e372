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


def setup_logging(level: str, fmt: str, libs_level: str = "WARNING") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in LIBRARIES:
        logging.getLogger(name).setLevel(libs_level)


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
