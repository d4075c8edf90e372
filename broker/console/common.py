"""What every part of the console's API shares: the one table of errors to HTTP statuses, JSON
bodies, pages and their tokens, and the checks of query parameters (each naming its field)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..errors import InvalidArgument
from ..models.common import decode_page_token, encode_page_token
from ..security.identity import Identity
from ..servicers.errors import status_of

Handler = Callable[[Request, Identity], Awaitable[Response]]
Guard = Callable[..., Callable[[Request], Awaitable[Response]]]  # Console._guard

# gRPC status names -> HTTP statuses (the servicers' one error table, seen through HTTP)
_HTTP = {
    "INVALID_ARGUMENT": 400,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "FAILED_PRECONDITION": 409,
    "PERMISSION_DENIED": 403,
    "UNAUTHENTICATED": 401,
    "RESOURCE_EXHAUSTED": 429,
    "UNAVAILABLE": 503,
}


def fail(status: int, message: str) -> Response:
    return JSONResponse({"error": message}, status_code=status)


def error(exc: Exception) -> Response:
    code, message = status_of(exc)
    return fail(_HTTP.get(code.name, 500), message)


async def json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise InvalidArgument("body", "must be a JSON object") from None
    if not isinstance(body, dict):
        raise InvalidArgument("body", "must be a JSON object")
    return body


def page(key: str, items: list[dict[str, Any]], last: Any, **more: Any) -> Response:
    """One page of a list, with the token of the next (empty on the last page)."""
    parts = last if isinstance(last, tuple) else (last,)
    token = encode_page_token(*parts) if last else ""
    return JSONResponse({**more, key: items, "next_page_token": token})


def after(q: Any, kinds: tuple[type, ...] = (int,)) -> Any:
    """The position a page token names: one value (a seq, an id), or a tuple of several."""
    parts = decode_page_token(q.get("page_token", ""), len(kinds))
    if parts is None:
        return None
    if any(type(p) is not k for p, k in zip(parts, kinds, strict=True)):
        raise InvalidArgument("page_token", "is not a token this broker issued")
    return parts[0] if len(parts) == 1 else tuple(parts)


def size(q: Any) -> int:
    text = q.get("page_size") or "50"
    if not text.isdigit() or not 1 <= int(text) <= 500:
        raise InvalidArgument("page_size", "must be between 1 and 500")
    return int(text)


def newest_first(q: Any) -> bool:
    """``order``: ``newest`` (the default) or ``oldest`` first."""
    order = q.get("order") or "newest"
    if order not in ("newest", "oldest"):
        raise InvalidArgument("order", "must be newest or oldest")
    return bool(order == "newest")


def enum(cls: Any, value: str | None, name: str) -> Any:
    if not value:
        return None
    try:
        return cls(value)
    except ValueError:
        raise InvalidArgument(name, f"must be one of {', '.join(m.value for m in cls)}") from None
