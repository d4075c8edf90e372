"""``a2a-broker-client`` (or ``python -m a2a_broker_client``): the client commands
(agents, send, subscribe, messages, tasks) without the server package.

With the server installed too, ``a2a-broker`` offers the same commands next to ``serve``.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from importlib import metadata
from typing import Any, NoReturn

from .cli import _common, add_client_commands, add_top_options


class Parser(argparse.ArgumentParser):
    """Usage errors in one line (the problem, and where to look), exit code 2."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # `--older-than -3d`: a value for its option to check, not an unknown option (as Python 3.13).
        self._negative_number_matcher = re.compile(r"^-\.?\d")

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
    add_top_options(parser)
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
    try:
        code = int(ns.func(ns) or 0)
        sys.stdout.flush()
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return code


if __name__ == "__main__":
    sys.exit(main())
