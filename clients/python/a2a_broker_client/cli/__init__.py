"""Client subcommands of the ``a2a-broker`` command line.

``broker/cli.py`` calls :func:`add_client_commands` with its subparsers, so
these commands share the ``a2a-broker`` console script with ``serve``.

Exit codes: 0 success; 1 the broker refused the request (its status code and
message are printed); 2 bad usage; 3 the broker is unreachable or unavailable
(or did not answer in time); 4 the work asked for ended badly (``a2a send``: the
task failed, was rejected or cancelled); 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

from typing import Any

from . import a2a, agents, limits, mcp, messages, schedules, sessions, stats, subscriptions, tasks
from ._common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_TASK_FAILED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    add_top_options,
    common_options,
    name_subcommands,
)

__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_TASK_FAILED",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "add_client_commands",
    "add_top_options",
]


def add_client_commands(subparsers: Any) -> None:
    """Add ``agents``, ``send``, ``subscribe``, ``messages``, ``subscriptions``, ``tasks``,
    ``sessions``, ``schedules``, ``limits``, ``stats``, ``a2a`` and ``mcp``.

    Each leaf command sets ``func``: it takes the parsed Namespace and returns
    the exit code.
    """
    common = common_options()
    agents.add(subparsers, common)
    messages.add(subparsers, common)
    subscriptions.add(subparsers, common)
    tasks.add(subparsers, common)
    sessions.add(subparsers, common)
    schedules.add(subparsers, common)
    limits.add(subparsers, common)
    stats.add(subparsers, common)
    a2a.add(subparsers, common)
    mcp.add(subparsers, common)
    for parser in subparsers.choices.values():
        name_subcommands(parser)
