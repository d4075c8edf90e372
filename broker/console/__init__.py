"""The web console: a single page (static/, plain JavaScript modules, no build step) over a JSON
API and a live feed of server-sent events (api.py), served by the HTTP listener."""

from __future__ import annotations

from .api import Console

__all__ = ["Console"]
