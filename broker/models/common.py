"""Validation pieces shared by every domain."""

from __future__ import annotations

import base64
import json
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints, field_validator
from pydantic_core import PydanticCustomError

from ..errors import InvalidArgument

ID_PATTERN = r"^[A-Za-z0-9._:@\-]+$"
_ID_RE = re.compile(ID_PATTERN)

Id = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=ID_PATTERN)]
# What an agent offers and a task or anycast message requires: a non-empty name, compared exactly.
Capability = Annotated[str, StringConstraints(min_length=1, max_length=128)]

# No string a request carries may hold a NUL: SQLite's length() (and so every CHECK on a text
# column) stops at the first one, and C clients would see a truncated value.
NUL = "\x00"
NUL_RULE = "must not contain NUL (\\x00) characters"

MAX_JSON_BYTES = 64 * 1024
# Struct fields (metadata) nest at most this deep: the top object is level 1, and each object or
# list inside adds one. protobuf parsers refuse messages nested deeper than 100 (Python, C++) and a
# Struct level costs three (Struct, map entry, Value), inside the responses that carry it: 20
# leaves room for every reader, whatever wraps the Struct.
MAX_JSON_DEPTH = 20
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


def fold(values: list[str]) -> list[str]:
    """A list meant as a set (capabilities, tags), in one canonical form: sorted, each once."""
    return sorted(set(values))


def json_depth_exceeds(value: Any, limit: int) -> bool:
    """Whether objects and lists nest deeper than ``limit`` levels (the outermost is level 1)."""
    if isinstance(value, dict):
        children: Any = value.values()
    elif isinstance(value, (list, tuple)):
        children = value
    else:
        return False
    if limit < 1:
        return True
    return any(json_depth_exceeds(v, limit - 1) for v in children)


def _json_limits(value: dict[str, Any]) -> dict[str, Any]:
    if json_depth_exceeds(value, MAX_JSON_DEPTH):
        raise PydanticCustomError(
            "json_depth", "must nest at most {limit} levels of objects and lists", {"limit": MAX_JSON_DEPTH}
        )
    if len(json.dumps(value, separators=(",", ":")).encode()) > MAX_JSON_BYTES:
        raise PydanticCustomError(
            "json_size", "must be at most {limit} bytes as JSON", {"limit": MAX_JSON_BYTES}
        )
    return value


# A Struct field (metadata): limited in depth and size, so that every reader can parse it back.
JsonObject = Annotated[dict[str, Any], AfterValidator(_json_limits)]


def _labels(value: dict[str, str]) -> dict[str, str]:
    if len(value) > 64:
        raise ValueError("at most 64 entries")
    for k, v in value.items():
        if not 1 <= len(k) <= 128:
            raise ValueError(f"key {k[:32]!r}: keys must be 1-128 characters")
        if len(v) > 512:
            raise ValueError(f"value of {k[:32]!r}: values must be at most 512 characters")
    return value


Labels = Annotated[dict[str, str], AfterValidator(_labels)]


def has_nul(value: Any) -> bool:
    """Whether a string, or any string inside lists and dicts (keys too), holds a NUL."""
    if isinstance(value, str):
        return NUL in value
    if isinstance(value, dict):
        return any(has_nul(k) or has_nul(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(has_nul(v) for v in value)
    return False


class Input(BaseModel):
    """Base of every validated request: frozen, unknown fields refused, and no string anywhere
    in it (lists, labels, metadata included) holding a NUL."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=False)

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        if has_nul(value):
            raise PydanticCustomError("nul", NUL_RULE)
        return value


def page_size(value: int, field: str = "page_size") -> int:
    if value == 0:
        return DEFAULT_PAGE_SIZE
    if not 1 <= value <= MAX_PAGE_SIZE:
        raise InvalidArgument(field, f"must be between 1 and {MAX_PAGE_SIZE} (0 means {DEFAULT_PAGE_SIZE})")
    return value


def encode_page_token(*parts: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(parts).encode()).decode().rstrip("=")


def decode_page_token(token: str, n: int, field: str = "page_token") -> list[Any] | None:
    """The parts of a token from encode_page_token, or None for an empty token."""
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        parts = json.loads(raw)
    except (ValueError, json.JSONDecodeError):
        raise InvalidArgument(field, "is not a token this broker issued") from None
    if not isinstance(parts, list) or len(parts) != n:
        raise InvalidArgument(field, "is not a token this broker issued")
    return parts


def check_id(value: str, field: str) -> str:
    """Validate an id field outside a pydantic model (e.g. a lookup key)."""
    if not value:
        raise InvalidArgument(field, "is required")
    if len(value) > 128:
        raise InvalidArgument(field, "must be at most 128 characters")
    if not _ID_RE.fullmatch(value):
        raise InvalidArgument(field, "may contain only letters, digits and . _ : @ -")
    return value
