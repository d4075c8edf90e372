"""``a2a-broker tokens create|list|revoke``: manage access tokens on the database, or through a
running broker.

With ``--db`` (a SQLite file or a ``postgresql://`` URL) it opens the database directly: on a
SQLite file, a second connection beside a running broker's (WAL allows it; it does not take the
broker's ``<db>.lock``), so the first admin token can be made before any broker runs. With
``--address`` it asks a running broker instead (the Admin service, with an admin token:
``--token`` or ``$A2A_BROKER_TOKEN``). Either way a revocation reaches every running broker of the
database within a second (see ``tokens.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NoReturn

from ..config import Settings
from ..security.identity import Role
from ..security.tokens import issue, touch_marker
from ..storage import sqlite_path
from ..storage.base import TokenRecord
from ..storage.token_file import is_postgres, open_db, open_tokens

__all__ = ["add_tokens_command", "open_db", "parse_duration"]

EXIT_USAGE = 2
EXIT_UNREACHABLE = 3  # as the client commands: the broker did not answer
EXIT_REFUSED = 4  # the broker answered with an error

TOKEN_ENV = "A2A_BROKER_TOKEN"

# The forms of every duration option of the command line (a2a_broker_client.cli._common.duration; the
# client commands are another distribution, and tests/e2e/test_cli_input.py keeps the two alike).
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw]?)$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
DURATION_FORMS = "seconds, or a number and a unit: 90s, 15m, 2h, 7d, 2w"


def add_tokens_command(sub: Any) -> None:
    p = sub.add_parser(
        "tokens",
        help="manage access tokens (--auth token), on the database or through a running broker",
        description="Manage the access tokens of --auth token: on the broker's database (--db: a SQLite file,"
        " or a postgresql:// URL), which needs no running broker (so the first admin token can be made before"
        " one runs); or through a running broker (--address, with an admin token). Running brokers refuse a"
        " revoked token within a second.",
    )
    p.add_argument(
        "--db",
        default=None,
        help="the broker's database: a SQLite file or a postgresql:// URL"
        f" (default ${Settings.env_name('db')}, else {Settings.model_fields['db'].default})",
    )
    # SUPPRESS: unset unless given, so that the top parser's own --address (the client commands')
    # is not overwritten when given before the subcommand.
    S = argparse.SUPPRESS
    p.add_argument("--address", default=S, help="a running broker's HOST:PORT: manage tokens through it")
    p.add_argument("--token", default=S, help=f"with --address: an admin token [env {TOKEN_ENV}]")
    p.add_argument("--ca", default=S, help="with --address: a PEM CA file to trust (turns TLS on)")
    p.add_argument("--client-cert", default=S, help="with --address: a PEM client certificate (mTLS)")
    p.add_argument("--client-key", default=S, help="with --address: the key of --client-cert")
    tsub = p.add_subparsers(dest="tokens_command", required=True)
    c = tsub.add_parser("create", help="issue a token; its secret is printed once, and stored nowhere")
    c.add_argument("--agent", help="the subject: an agent id, or an id prefix ending in * (a fleet)")
    c.add_argument("--role", choices=[r.value for r in Role], default=Role.AGENT.value)
    c.add_argument(
        "--expires",
        type=parse_duration,
        metavar="DURATION",
        help="lifetime: 3600, 90m, 12h, 30d, 2w (default: never)",
    )
    c.add_argument("--note", default="", help="a free note (who it is for)")
    c.add_argument(
        "--create-db",
        action="store_true",
        help="make the SQLite database (and its folder) if there is none: the first token, before any"
        " broker ran",
    )
    c.set_defaults(func=_create)
    lst = tsub.add_parser("list", help="list tokens (never their secrets)")
    lst.set_defaults(func=_list)
    r = tsub.add_parser("revoke", help="revoke a token by id (refused by running brokers within a second)")
    r.add_argument("token_id")
    r.set_defaults(func=_revoke)
    tsub.metavar = "{" + ",".join(tsub.choices) + "}"  # in the usage line and the "required" error


def _usage(message: str) -> NoReturn:
    print(f"a2a-broker tokens: {message}", file=sys.stderr)
    raise SystemExit(EXIT_USAGE)


def _db_url(ns: argparse.Namespace, create: bool = False) -> str:
    """The database of --db (else the environment, else the default): a postgresql:// URL as it
    is, else the SQLite file, which is refused when it does not exist (a typo would otherwise make
    a new database) unless ``create``."""
    given = ns.db or os.environ.get(Settings.env_name("db"))
    url = given or Settings.model_fields["db"].default
    if is_postgres(url):
        return url
    path = sqlite_path(url)
    if path is None or path == ":memory:":
        _usage(f"--db must name a SQLite file or a postgresql:// URL (got {url!r})")
    if not create and not os.path.exists(path):
        source = "--db" if ns.db else Settings.env_name("db") if given else "the default --db"
        fix = "; `tokens create --create-db` makes a new one" if ns.tokens_command == "create" else ""
        _usage(f"no database at {path} ({source}): check the path{fix}")
    return path


def parse_duration(text: str) -> float:
    """An argparse ``type``: a lifetime in seconds, above zero (a bad one: exit 2)."""
    m = _DURATION.match(text.strip().lower())
    if m is None:
        why = "a duration cannot be negative" if text.strip().startswith("-") else "not a duration"
        raise argparse.ArgumentTypeError(f"{why}: {text!r} ({DURATION_FORMS})")
    seconds = float(m.group(1)) * _UNIT_S[m.group(2)]
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0: {text!r} ({DURATION_FORMS})")
    return seconds


def _remote(ns: argparse.Namespace) -> str | None:
    """The broker's address when the command goes through one (--address given, not --db)."""
    address: str | None = getattr(ns, "address", None)
    if address and ns.db:
        _usage("give --db (the database) or --address (a running broker), not both")
    return address


def _create(ns: argparse.Namespace) -> int:
    role = Role(ns.role)
    address = _remote(ns)
    if address is not None:
        from .tokens_remote import create

        return _call(
            ns, address, lambda stub, md: create(stub, md, ns.agent or "", role, ns.expires, ns.note)
        )
    try:
        rec, token = issue(ns.agent, role, ns.expires, ns.note, time.time_ns() // 1000)
    except ValueError as exc:
        field, _, rule = str(exc).partition(": ")
        flag = "--agent" if field == "subject" else "--note" if field == "note" else "--expires"
        _usage(f"create: {flag}: {rule}")
    with open_tokens(_db_url(ns, create=ns.create_db)) as db:
        db.insert(rec)
    _print_created(ns, rec, token)
    return 0


def _print_created(ns: argparse.Namespace, rec: TokenRecord, token: str) -> None:
    if ns.json:
        print(json.dumps({**_row(rec), "token": token}))
    else:
        print(
            f"token {rec.token_id} for {rec.subject} ({rec.role}); keep this secret, it is not shown again:"
        )
        print(token)


def _when(us: int | None) -> str:
    return "-" if us is None else datetime.fromtimestamp(us / 1e6, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _row(rec: TokenRecord) -> dict[str, Any]:
    return {
        "token_id": rec.token_id,
        "subject": rec.subject,
        "role": rec.role,
        "created_at": _when(rec.created_at),
        "expires_at": _when(rec.expires_at),
        "revoked_at": _when(rec.revoked_at),
        "note": rec.note,
    }


def _list(ns: argparse.Namespace) -> int:
    address = _remote(ns)
    if address is not None:
        from .tokens_remote import list_tokens

        return _call(ns, address, lambda stub, md: list_tokens(stub, md))
    with open_tokens(_db_url(ns)) as db:
        _print_list(ns, db.list())
    return 0


def _print_list(ns: argparse.Namespace, records: list[TokenRecord]) -> None:
    rows = [_row(r) for r in records]
    if ns.json:
        print(json.dumps(rows))
        return
    print(f"{'ID':<14}{'SUBJECT':<24}{'ROLE':<14}{'EXPIRES':<22}{'REVOKED':<22}NOTE")
    for r in rows:
        print(
            f"{r['token_id']:<14}{r['subject']:<24}{r['role']:<14}{r['expires_at']:<22}{r['revoked_at']:<22}"
            f"{r['note']}"
        )


def _revoke(ns: argparse.Namespace) -> int:
    address = _remote(ns)
    if address is not None:
        from .tokens_remote import revoke

        return _call(ns, address, lambda stub, md: revoke(stub, md, ns.token_id))
    url = _db_url(ns)
    with open_tokens(url) as db:
        found = db.revoke(ns.token_id, time.time_ns() // 1000)
    if not found:
        print(f"a2a-broker tokens revoke: no token {ns.token_id!r}", file=sys.stderr)
        return 1
    if db.path is not None:  # SQLite: the running broker watches the marker file
        touch_marker(db.path)
    print(f"revoked {ns.token_id}")
    return 0


def _call(ns: argparse.Namespace, address: str, do: Callable[[Any, Any], Any]) -> int:
    """Run one Admin call against the broker at ``address``; print what it answered."""
    from .tokens_remote import RemoteError, connect

    async def main() -> Any:
        channel, stub, md = connect(address, ns)
        async with channel:
            return await do(stub, md)

    try:
        result = asyncio.run(main())
    except RemoteError as exc:
        print(f"a2a-broker tokens: {exc}", file=sys.stderr)
        return exc.exit_code
    except ValueError as exc:  # a TLS option given alone
        _usage(str(exc))
    if ns.tokens_command == "create":
        _print_created(ns, *result)
    elif ns.tokens_command == "list":
        _print_list(ns, result)
    else:
        print(f"revoked {ns.token_id}")
    return 0
