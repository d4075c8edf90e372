"""Conversions between protobuf well-known types and the broker's plain values."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar, cast

from google.protobuf import duration_pb2, json_format, struct_pb2, timestamp_pb2

from ..errors import InvalidArgument

if TYPE_CHECKING:
    from google.protobuf.internal.enum_type_wrapper import _EnumTypeWrapper

_V = TypeVar("_V", bound=int)


def ts(us: int | None) -> timestamp_pb2.Timestamp | None:
    """Microseconds since the epoch -> Timestamp (None stays unset)."""
    if us is None:
        return None
    return timestamp_pb2.Timestamp(seconds=us // 1_000_000, nanos=(us % 1_000_000) * 1000)


# The range a Timestamp may hold (0001-01-01 to 9999-12-31): beyond it the microseconds no longer
# fit SQLite's 64-bit integers.
MIN_TS_SECONDS = -62_135_596_800
MAX_TS_SECONDS = 253_402_300_799


def ts_us(msg: Any, field: str, name: str | None = None) -> int | None:
    """The Timestamp field of msg in microseconds, or None when unset; InvalidArgument (naming
    ``name``, by default ``field``) outside the Timestamp range."""
    if not msg.HasField(field):
        return None
    t = getattr(msg, field)
    if not MIN_TS_SECONDS <= t.seconds <= MAX_TS_SECONDS:
        raise InvalidArgument(name or field, "must be a valid Timestamp (years 1 to 9999)")
    return t.seconds * 1_000_000 + t.nanos // 1000


def dur(seconds: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromMicroseconds(int(round(seconds * 1_000_000)))
    return d


def dur_s(msg: Any, field: str) -> float | None:
    """The Duration field of msg in seconds, or None when unset."""
    if not msg.HasField(field):
        return None
    d = getattr(msg, field)
    return d.seconds + d.nanos / 1e9


def struct_to_dict(msg: Any, field: str) -> dict[str, Any]:
    if not msg.HasField(field):
        return {}
    return json_format.MessageToDict(getattr(msg, field))


def dict_to_struct(value: dict[str, Any]) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(value)
    return s


def enum_value(enum_cls: _EnumTypeWrapper[_V], value: int, field: str) -> _V:
    """Refuse enum numbers the proto does not define (proto3 keeps unknown values); the value,
    typed as the enum's."""
    if value not in enum_cls.values():
        raise InvalidArgument(field, f"unknown value {value}")
    return cast(_V, value)
