"""``a2a-broker-client`` (or ``python -m a2a_broker_client``): the client commands
(agents, send, subscribe, messages, tasks) without the server package.

With the server installed too, ``a2a-broker`` offers the same commands next to ``serve``.
"""

from __future__ import annotations

import argparse
import sys

from .cli import add_client_commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="a2a-broker-client",
        description="Talk to a running a2a-broker: agents, send, subscribe, messages, tasks.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    add_client_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    return int(ns.func(ns) or 0)


if __name__ == "__main__":
    sys.exit(main())
