"""The ``a2a-broker`` command: ``serve`` runs the broker; the other subcommands
(agents, send, subscribe, messages, tasks) talk to a running broker."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any, get_args

from pydantic import ValidationError

from .config import Settings


def _add_serve(sub: Any) -> None:
    p = sub.add_parser(
        "serve",
        help="run the broker",
        description="Run the broker. Every flag can also be set by the environment variable shown.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    for name, field in Settings.model_fields.items():
        flag = "--" + name.replace("_", "-")
        choices = None
        args = get_args(field.annotation)
        if args and all(isinstance(a, str) for a in args):
            choices = list(args)
        p.add_argument(
            flag,
            dest=name,
            default=None,
            choices=choices,
            help=f"{field.description} [env {Settings.env_name(name)}; default {field.default}]",
        )
    p.set_defaults(func=_serve)


def _serve(ns: argparse.Namespace) -> int:
    from .logs import setup_logging
    from .server import serve

    overrides = {name: getattr(ns, name) for name in Settings.model_fields}
    try:
        settings = Settings.load(overrides)
    except ValidationError as exc:
        for err in exc.errors():
            name = str(err["loc"][0]) if err["loc"] else "?"
            print(
                f"a2a-broker: --{name.replace('_', '-')} / {Settings.env_name(name)}: {err['msg']}",
                file=sys.stderr,
            )
        return 2
    setup_logging(settings.log_level, settings.log_format)
    try:
        asyncio.run(serve(settings))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"a2a-broker: {exc}", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="a2a-broker", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_serve(sub)
    try:
        from a2a_broker_client.cli import add_client_commands
    except ImportError:
        pass
    else:
        add_client_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    return int(ns.func(ns) or 0)


if __name__ == "__main__":
    sys.exit(main())
