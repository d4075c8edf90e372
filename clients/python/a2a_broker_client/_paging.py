"""Following the pages of a list call."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any


async def pages(list_fn: Callable[..., Any], filters: dict[str, Any]) -> AsyncIterator[Any]:
    """Every item of ``list_fn(**filters, page_token=...)``, page after page."""
    token = ""
    while True:
        page = await list_fn(**filters, page_token=token)
        for item in page.items:
            yield item
        token = page.next_page_token
        if not token:
            return
