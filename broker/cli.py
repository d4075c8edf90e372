"""The ``a2a-broker`` command: ``serve`` runs the broker; the other subcommands
(agents, send, subscribe, messages, tasks) talk to a running broker."""

from __future__ import annotations

import argparse
import errno
import os
import re
import socket
import sys
from typing import Any, NoReturn, get_args

from pydantic import ValidationError

from . import __version__
from .config import Settings
from .errors import BrokerError

DESCRIPTION = (
    "a2a-broker serve runs the broker; tokens manages its access tokens; the other commands talk to a"
    " running broker (agents, send, subscribe, messages, tasks, sessions, schedules, stats, a2a)."
)
EXIT_OK = 0
EXIT_START_FAILED = 1  # serve: the broker could not start (port in use, storage unusable)
EXIT_USAGE = 2  # a bad flag, argument or setting


def _add_serve(sub: Any) -> None:
    p = sub.add_parser(
        "serve",
        help="run the broker",
        description="Run the broker. Every flag can also be set by the environment variable shown.",
        epilog="Exit codes: 0 after a clean shutdown, 1 when the broker cannot start (port in use, "
        "storage unusable), 2 for a bad flag or setting.",
    )
    for name, field in Settings.model_fields.items():
        flag = "--" + name.replace("_", "-")
        choices = None
        args = get_args(field.annotation)
        if args and all(isinstance(a, str) for a in args):
            choices = list(args)
        if field.annotation is bool:  # a switch: --insecure
            p.add_argument(
                flag, dest=name, default=None, action="store_const", const=True, help=_setting_help(name)
            )
            continue
        p.add_argument(
            flag,
            dest=name,
            default=None,
            choices=choices,
            help=_setting_help(name),
        )
    p.set_defaults(func=_serve)


def _setting_help(name: str) -> str:
    """A setting's description, its variable and its default (once; none when it is derived)."""
    field = Settings.model_fields[name]
    default = "" if field.default is None else f"; default {field.default}"
    text = f"{field.description} [env {Settings.env_name(name)}{default}]"
    return text.replace("%", "%%")


def _serve(ns: argparse.Namespace) -> int:
    overrides = {name: getattr(ns, name) for name in Settings.model_fields}
    try:
        settings = Settings.load(overrides)
    except ValidationError as exc:
        for err in exc.errors():
            if not err["loc"]:  # a rule between settings (e.g. --tls-cert needs --tls-key)
                print(f"a2a-broker: {err['msg'].removeprefix('Value error, ')}", file=sys.stderr)
                continue
            name = str(err["loc"][0])
            print(
                f"a2a-broker: --{name.replace('_', '-')} / {Settings.env_name(name)}: {err['msg']}",
                file=sys.stderr,
            )
        return EXIT_USAGE
    busy = _listen_problem(settings.address)
    if busy:
        return _cannot_start(busy)
    if settings.processes > 1:
        from .processes import supervise

        return supervise(settings)
    return run_broker(settings)


def run_broker(settings: Settings) -> int:
    """Run one broker process until SIGTERM or SIGINT; the exit code."""
    from .logs import setup_logging
    from .server import serve

    setup_logging(settings.log_level, settings.log_format, settings.log_level_libs)
    from .event_loop import LoopUnavailable, run

    try:
        run(serve(settings), settings.event_loop)
    except LoopUnavailable as exc:
        print(f"a2a-broker: --event-loop: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        pass
    except RuntimeError as exc:  # grpc could not bind after all (the check below raced)
        if "Failed to bind" not in str(exc):
            raise
        return _cannot_start(f"cannot listen on {settings.address}; {_FIX_ADDRESS}")
    except (OSError, BrokerError) as exc:
        return _cannot_start(str(exc))
    return EXIT_OK


_FIX_ADDRESS = f"stop the other process or choose another with --address / {Settings.env_name('address')}"


def _listen_problem(address: str) -> str | None:
    """Why the broker could not listen on ``address`` (a port in use, a host not of this machine),
    found before storage is opened; None when it can (or the check does not apply)."""
    host, _, port = address.rpartition(":")
    if address.startswith("unix:") or port == "0":
        return None
    host = host.strip("[]")
    try:
        infos = socket.getaddrinfo(host or None, int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (OSError, ValueError) as exc:
        return f"cannot listen on {address}: {getattr(exc, 'strerror', None) or exc}; check --address"
    for family, kind, proto, _, sockaddr in infos:
        with socket.socket(family, kind, proto) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as grpc does
            try:
                s.bind(sockaddr)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    return f"cannot listen on {address}: the port is in use; {_FIX_ADDRESS}"
                if exc.errno == errno.EADDRNOTAVAIL:
                    return f"cannot listen on {address}: not an address of this machine; check --address"
    return None


def _cannot_start(message: str) -> int:
    print(f"a2a-broker: {message}", file=sys.stderr)
    return EXIT_START_FAILED


class Parser(argparse.ArgumentParser):
    """Usage errors in one line (the problem, and where to look), exit code 2."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # A value starting with "-" and a digit (`--older-than -3d`) is a value, not an unknown
        # option, so that its own check says what is wrong with it (Python 3.13's rule).
        self._negative_number_matcher = re.compile(r"^-\.?\d")

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    # Subcommand parsers are made by the same class (argparse's default parser_class).
    parser = Parser(prog="a2a-broker", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--json",
        action="store_true",
        default=False,
        help="client commands: print JSON instead of a table (also accepted after the subcommand)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_serve(sub)
    from .commands.tokens import add_tokens_command

    add_tokens_command(sub)
    try:
        from a2a_broker_client.cli import add_client_commands, add_top_options
    except ImportError:
        pass
    else:
        add_top_options(parser)
        add_client_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    if "serve" not in (sys.argv[1:] if argv is None else argv):
        # A client command says what went wrong in one line: no gRPC core log lines around it (a
        # failed TLS handshake logs several). Set before grpc is imported, which reads it once.
        os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    ns = build_parser().parse_args(argv)
    try:
        code = int(ns.func(ns) or 0)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, and let nothing flush into the pipe again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    return code


if __name__ == "__main__":
    sys.exit(main())
