"""Client subcommands of the ``a2a-broker`` command line.

``broker/cli.py`` calls :func:`add_client_commands` with its subparsers, so
these commands share the ``a2a-broker`` console script with ``serve``.

Exit codes: 0 success; 1 the broker refused the request (its status code and
message are printed); 2 bad usage; 3 the broker is unreachable or unavailable
(or did not answer in time); 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

from typing import Any

from . import a2a, agents, mcp, messages, sessions, stats, tasks
from ._common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    common_options,
)

__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "add_client_commands",
]


def add_client_commands(subparsers: Any) -> None:
    """Add ``agents``, ``send``, ``subscribe``, ``messages``, ``tasks``, ``sessions``, ``stats``,
    ``a2a`` and ``mcp``.

    Each leaf command sets ``func``: it takes the parsed Namespace and returns
    the exit code.
    """
    common = common_options()
    agents.add(subparsers, common)
    messages.add(subparsers, common)
    tasks.add(subparsers, common)
    sessions.add(subparsers, common)
    stats.add(subparsers, common)
    a2a.add(subparsers, common)
    mcp.add(subparsers, common)
