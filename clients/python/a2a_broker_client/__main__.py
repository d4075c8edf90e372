"""``a2a-broker-client`` (or ``python -m a2a_broker_client``): the client commands
(agents, send, subscribe, messages, tasks) without the server package.

With the server installed too, ``a2a-broker`` offers the same commands next to ``serve``.
"""

from __future__ import annotations

import argparse
import sys
from importlib import metadata
from typing import NoReturn

from .cli import _common, add_client_commands


class Parser(argparse.ArgumentParser):
    """Usage errors in one line (the problem, and where to look), exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    # Subcommand parsers are made by the same class (argparse's default parser_class).
    parser = Parser(
        prog="a2a-broker-client",
        description="Talk to a running a2a-broker: agents, send, subscribe, messages, tasks.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument(
        "--json",
        action="store_true",
        default=False,
        help="print JSON instead of a table (also accepted after the subcommand)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    add_client_commands(sub)
    return parser


def _version() -> str:
    try:
        return metadata.version("a2a-broker-client")
    except metadata.PackageNotFoundError:
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    _common.PROG = "a2a-broker-client"
    ns = build_parser().parse_args(argv)
    return int(ns.func(ns) or 0)


if __name__ == "__main__":
    sys.exit(main())
