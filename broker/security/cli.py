"""``a2a-broker tokens create|list|revoke``: manage access tokens on the database file.

It opens the SQLite file directly (a second connection beside a running broker's, which WAL
allows; it does not take the broker's ``<db>.lock``), so the first admin token can be made
before any broker runs. Revocations reach a running broker at once (see ``tokens.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from contextlib import closing
from datetime import UTC, datetime
from typing import Any, NoReturn

from ..config import Settings
from ..storage import sqlite_path
from ..storage import token_file as store
from ..storage.base import TokenRecord
from ..storage.token_file import open_db
from .identity import Role, check_subject
from .tokens import new_secret, touch_marker

EXIT_USAGE = 2

# The forms of every duration option of the command line (a2a_broker_client.cli._common.duration; the
# client commands are another distribution, and tests/e2e/test_cli_input.py keeps the two alike).
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw]?)$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
DURATION_FORMS = "seconds, or a number and a unit: 90s, 15m, 2h, 7d, 2w"


def add_tokens_command(sub: Any) -> None:
    p = sub.add_parser(
        "tokens",
        help="manage access tokens (--auth token) on the database file",
        description="Manage the access tokens of --auth token, on the broker's database file. It needs no"
        " running broker (so the first admin token can be made before one runs); a running broker refuses"
        " a revoked token at once.",
    )
    p.add_argument(
        "--db",
        default=None,
        help=f"the broker's database (default ${Settings.env_name('db')}, else "
        f"{Settings.model_fields['db'].default})",
    )
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
        help="make the database (and its folder) if there is none: the first token, before any broker ran",
    )
    c.set_defaults(func=_create)
    lst = tsub.add_parser("list", help="list tokens (never their secrets)")
    lst.set_defaults(func=_list)
    r = tsub.add_parser("revoke", help="revoke a token by id (refused at once by a running broker)")
    r.add_argument("token_id")
    r.set_defaults(func=_revoke)
    tsub.metavar = "{" + ",".join(tsub.choices) + "}"  # in the usage line and the "required" error


def _usage(message: str) -> NoReturn:
    print(f"a2a-broker tokens: {message}", file=sys.stderr)
    raise SystemExit(EXIT_USAGE)


def _db_path(ns: argparse.Namespace, create: bool = False) -> str:
    """The SQLite file of --db (else the environment, else the default). A file that does not
    exist is refused (a typo would otherwise make a new database) unless ``create``."""
    given = ns.db or os.environ.get(Settings.env_name("db"))
    url = given or Settings.model_fields["db"].default
    path = sqlite_path(url)
    if path is None or path == ":memory:":
        _usage(f"--db must name a SQLite file (got {url!r})")
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


def _create(ns: argparse.Namespace) -> int:
    role = Role(ns.role)
    if not ns.agent and role in (Role.AGENT, Role.ORCHESTRATOR):
        _usage("create: --agent is needed for the roles agent and orchestrator")
    try:
        subject = check_subject(ns.agent or role.value)
    except ValueError as exc:
        _usage(f"create: --agent: {exc}")
    now = time.time_ns() // 1000
    expires = now + int(ns.expires * 1_000_000) if ns.expires else None
    token_id, token, secret_hash = new_secret()
    rec = TokenRecord(token_id, secret_hash, subject, role.value, now, expires, None, ns.note)
    with closing(open_db(_db_path(ns, create=ns.create_db))) as conn:
        store.insert_token(conn, rec)
    if ns.json:
        print(json.dumps({**_row(rec), "token": token}))
    else:
        print(f"token {token_id} for {subject} ({role.value}); keep this secret, it is not shown again:")
        print(token)
    return 0


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
    with closing(open_db(_db_path(ns))) as conn:
        rows = [_row(r) for r in store.list_tokens(conn)]
    if ns.json:
        print(json.dumps(rows))
        return 0
    print(f"{'ID':<14}{'SUBJECT':<24}{'ROLE':<14}{'EXPIRES':<22}{'REVOKED':<22}NOTE")
    for r in rows:
        print(
            f"{r['token_id']:<14}{r['subject']:<24}{r['role']:<14}{r['expires_at']:<22}{r['revoked_at']:<22}"
            f"{r['note']}"
        )
    return 0


def _revoke(ns: argparse.Namespace) -> int:
    path = _db_path(ns)
    with closing(open_db(path)) as conn:
        found = store.revoke_token(conn, ns.token_id, time.time_ns() // 1000)
    if not found:
        print(f"a2a-broker tokens revoke: no token {ns.token_id!r}", file=sys.stderr)
        return 1
    touch_marker(path)
    print(f"revoked {ns.token_id}")
    return 0
