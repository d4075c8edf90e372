"""The one place protobuf values become the broker's plain values and back.

Times (Timestamp) and durations (Duration) become integer microseconds (the
broker's unit: ``broker/clock.py``), a Struct a dict, an enum number its
checked, typed value. Servicers and their ``*_pb`` helpers call these; none
spells the arithmetic again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

from google.protobuf import duration_pb2, json_format, struct_pb2, timestamp_pb2
from google.protobuf.message import Message

from ..clock import US_PER_S, s_to_us
from ..errors import InvalidArgument

if TYPE_CHECKING:
    from google.protobuf.internal.enum_type_wrapper import _EnumTypeWrapper

_V = TypeVar("_V", bound=int)


def ts(us: int | None) -> timestamp_pb2.Timestamp | None:
    """Microseconds since the epoch -> Timestamp (None stays unset)."""
    if us is None:
        return None
    return timestamp_pb2.Timestamp(seconds=us // US_PER_S, nanos=(us % US_PER_S) * 1000)


def ts_fields(us: int) -> dict[str, int]:
    """Microseconds -> the fields of a Timestamp or Duration, for a message constructor: the
    constructor builds the sub-message from a dict in C, twice as fast as from a Timestamp."""
    return {"seconds": us // US_PER_S, "nanos": us % US_PER_S * 1000}


def set_us(field: Any, us: int) -> None:
    """Fill a Timestamp or Duration sub-message in place with microseconds: about twice as fast
    as building one and passing it to the constructor (which copies it)."""
    field.seconds = us // US_PER_S
    field.nanos = (us % US_PER_S) * 1000


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
    return t.seconds * US_PER_S + t.nanos // 1000


def dur(seconds: float) -> duration_pb2.Duration:
    """Seconds -> Duration (whole microseconds)."""
    d = duration_pb2.Duration()
    d.FromMicroseconds(s_to_us(seconds))
    return d


def dur_us(msg: Any, field: str) -> int | None:
    """The Duration field of msg in whole microseconds, or None when unset."""
    if not msg.HasField(field):
        return None
    d = getattr(msg, field)
    return d.seconds * US_PER_S + d.nanos // 1000


def dur_s(msg: Any, field: str) -> float | None:
    """The Duration field of msg in seconds, or None when unset."""
    if not msg.HasField(field):
        return None
    d = getattr(msg, field)
    return d.seconds + d.nanos / 1e9


def struct_to_dict(msg: Any, field: str) -> dict[str, Any]:
    """The Struct field of msg as a dict ({} when unset)."""
    if not msg.HasField(field):
        return {}
    return json_format.MessageToDict(getattr(msg, field))


def dict_to_struct(value: dict[str, Any]) -> struct_pb2.Struct:
    """A JSON-like dict -> Struct."""
    s = struct_pb2.Struct()
    s.update(value)
    return s


def enum_value(enum_cls: _EnumTypeWrapper[_V], value: int, field: str) -> _V:
    """Refuse enum numbers the proto does not define (proto3 keeps unknown values); the value,
    typed as the enum's."""
    if value not in enum_cls.values():
        raise InvalidArgument(field, f"unknown value {value}")
    return cast(_V, value)


# A page of a list is cut short before its items pass this size: under gRPC's default 4 MiB
# receive limit, with room for the rest of the response.
PAGE_MAX_BYTES = 4 * 1024 * 1024 - 64 * 1024


def framed_size(size: int) -> int:
    """Bytes of one repeated-message entry of ``size`` bytes: tag, length varint, body."""
    return 1 + max(1, (size.bit_length() + 6) // 7) + size


def fitting(items: Sequence[Message], max_bytes: int = PAGE_MAX_BYTES) -> int:
    """How many of ``items``, from the first, fit in ``max_bytes`` (always at least one)."""
    size = 0
    for i, x in enumerate(items):
        size += framed_size(x.ByteSize())
        if i and size > max_bytes:
            return i
    return len(items)
