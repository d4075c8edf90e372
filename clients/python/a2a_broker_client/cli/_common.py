"""Shared pieces of the client commands: options, running, errors, output."""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import enum
import json
import os
import re
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from .. import loop as event_loop
from ..client import ADDRESS_ENV, BrokerClient, default_address
from ..errors import BrokerRpcError, DeadlineExceededError, UnavailableError
from ..retry import RetryConfig
from ..security import CA_ENV, CLIENT_CERT_ENV, CLIENT_KEY_ENV, TOKEN_ENV, Security
from ._tls import tls_problem

# Exit codes scripts can rely on (documented in clients/python/README.md).
EXIT_OK = 0
EXIT_REFUSED = 1  # the broker answered with an error status (printed with its message)
EXIT_USAGE = 2  # bad command line (argparse also uses 2)
EXIT_UNREACHABLE = 3  # no broker at the address, or it answered UNAVAILABLE / did not answer in time
EXIT_TASK_FAILED = (
    4  # the work asked for ended badly (`a2a send`: the task failed, was rejected or cancelled)
)
EXIT_INTERRUPTED = 130  # Ctrl-C

PROG = "a2a-broker"  # the command that prints messages (a2a-broker-client sets its own name)
CLI_RETRY = RetryConfig(max_attempts=3, initial_backoff=0.1, max_backoff=0.5)


class UsageError(Exception):
    """A bad argument found after parsing (exit code 2)."""


def key_values(items: list[str], flag: str) -> dict[str, str]:
    """Repeated ``FLAG KEY=VALUE`` arguments as a dict (UsageError naming ``flag`` otherwise)."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"{flag} wants KEY=VALUE, not {item!r}")
        out[key] = value
    return out


CONNECTION = ("address", "token", "ca", "client_cert", "client_key")


def _connection_arguments(g: Any) -> None:
    # SUPPRESS: unset unless given, so that an option given before the subcommand (set by the
    # top parser) is not overwritten by this parser's default; read them with ``connection()``.
    S = argparse.SUPPRESS
    g.add_argument(
        "--address", default=S, help=f"broker HOST:PORT [env {ADDRESS_ENV}; default {default_address()}]"
    )
    g.add_argument("--token", default=S, help=f"bearer token [env {TOKEN_ENV}]")
    g.add_argument("--ca", default=S, help=f"PEM CA file to trust; turns TLS on [env {CA_ENV}]")
    g.add_argument("--client-cert", default=S, help=f"PEM client certificate (mTLS) [env {CLIENT_CERT_ENV}]")
    g.add_argument("--client-key", default=S, help=f"PEM key of --client-cert [env {CLIENT_KEY_ENV}]")


def common_options() -> argparse.ArgumentParser:
    """Options every client command takes (used as an argparse parent)."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("connection and output")
    _connection_arguments(g)
    g.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print JSON instead of a table"
    )
    return p


def name_subcommands(parser: argparse.ArgumentParser) -> None:
    """Show a command's subcommands as ``{a,b,c}`` in its usage line and in the "required" error
    (argparse would name the ``dest`` there), each of them, as they were added."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            action.metavar = "{" + ",".join(action.choices) + "}"


def add_top_options(parser: argparse.ArgumentParser) -> None:
    """The connection options on the top parser too: ``a2a-broker --address H:P agents list``."""
    g = parser.add_argument_group("client commands (also accepted after the subcommand)")
    _connection_arguments(g)


def connection(ns: argparse.Namespace) -> argparse.Namespace:
    """``ns`` with every connection option and ``json`` set (None / False when not given)."""
    for name in CONNECTION:
        if not hasattr(ns, name):
            setattr(ns, name, None)
    if not hasattr(ns, "json"):
        ns.json = False
    return ns


# gRPC target schemes passed through as they are (everything else must be HOST:PORT).
_TARGET_SCHEMES = ("dns:", "unix:", "unix-abstract:", "ipv4:", "ipv6:", "vsock:")


def address_problem(address: str) -> str | None:
    """What is wrong with a broker address (HOST:PORT, [v6]:PORT or a gRPC target URI), or None.

    Without this, gRPC reads a bare host as port 443."""
    if address.startswith(_TARGET_SCHEMES):
        return None
    scheme, sep, rest = address.partition("://")
    if sep:
        hint = " and --ca FILE for TLS" if scheme.lower() in ("https", "grpcs") else ""
        return f"{address!r} is a URL: give HOST:PORT (e.g. {rest.split('/')[0] or '127.0.0.1:50051'}){hint}"
    host, sep, port = address.rpartition(":")
    if not sep or not host or (host.endswith(":") and not host.startswith("[")):
        return f"the address {address!r} needs a port: HOST:PORT, e.g. 127.0.0.1:50051"
    if host.startswith("[") != host.endswith("]"):
        return f"the address {address!r} needs a port: HOST:PORT, e.g. [::1]:50051"
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        return f"the port of {address!r} must be a number from 1 to 65535"
    return None


def positive_int(text: str) -> int:
    """An argparse ``type``: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {value})")
    return value


def resolve_address(ns: argparse.Namespace) -> str | None:
    """The broker's address (--address, else the environment, else the default), or None after
    saying what is wrong with it (a usage error)."""
    address: str = ns.address or os.environ.get(ADDRESS_ENV) or default_address()
    problem = address_problem(address)
    if problem:
        error(f"{'--address' if ns.address else ADDRESS_ENV}: {problem}")
        return None
    return address


Command = Callable[[BrokerClient, argparse.Namespace], Awaitable[int | None]]


def runner(command: Command) -> Callable[[argparse.Namespace], int]:
    """Wrap an async command: one client, error messages instead of tracebacks, exit codes."""

    def run(ns: argparse.Namespace) -> int:
        connection(ns)
        address = resolve_address(ns)
        if address is None:
            return EXIT_USAGE

        async def main() -> int | None:
            async with BrokerClient(
                address,
                retry=CLI_RETRY,
                token=ns.token,
                ca=ns.ca,
                client_cert=ns.client_cert,
                client_key=ns.client_key,
            ) as client:
                return await command(client, ns)

        try:
            return int(event_loop.run(main()) or EXIT_OK)
        except (UnavailableError, DeadlineExceededError) as exc:
            error(unreachable(address, exc.code_name, exc.details, ns))
            return EXIT_UNREACHABLE
        except BrokerRpcError as exc:
            error(f"the broker refused: {exc.code_name}: {exc.details}")
            return EXIT_REFUSED
        except (UsageError, ValueError) as exc:
            error(str(exc))
            return EXIT_USAGE
        except KeyboardInterrupt:
            return EXIT_INTERRUPTED

    return run


def unreachable(address: str, code: str, details: str, ns: argparse.Namespace) -> str:
    """What to say when the broker at ``address`` did not answer: the TLS problem and its fix when
    TLS is the reason, else that it may not be running."""
    sec = Security.resolve(token=ns.token, ca=ns.ca, client_cert=ns.client_cert, client_key=ns.client_key)
    problem = tls_problem(details, address, sec) if code == "UNAVAILABLE" else None
    if problem:
        return f"cannot connect to the broker at {address}: {problem}"
    return (
        f"cannot reach the broker at {address} ({code}: {details}). Is it running?"
        f" Set --address or {ADDRESS_ENV}."
    )


def error(text: str) -> None:
    print(f"{PROG}: {text}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- values


def jsonable(value: Any, content_type: str = "") -> Any:
    """A dataclass/enum/datetime tree as plain JSON values.

    Payload-like bytes are shown as the parsed value for a JSON content type,
    as text when they are UTF-8, else as ``{"base64": "..."}``.
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(value):
            v = getattr(value, f.name)
            ct = ""
            if f.name == "payload":
                ct = getattr(value, "content_type", "")
            elif f.name == "result":
                ct = getattr(value, "result_content_type", "")
            out[f.name] = jsonable(v, ct)
        return out
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, bytes):
        return payload_value(value, content_type)
    if isinstance(value, dict):
        return {str(jsonable(k)): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def payload_value(data: bytes, content_type: str) -> Any:
    if not data:
        return ""
    ct = content_type.split(";", 1)[0].strip().lower()
    if ct == "application/json" or ct.endswith("+json"):
        try:
            return json.loads(data)
        except ValueError:
            pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode()}


def print_json(value: Any, *, line: bool = False) -> None:
    text = json.dumps(jsonable(value), ensure_ascii=False, indent=None if line else 2)
    print(text, flush=True)


def when(value: datetime | None) -> str:
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def short(text: str, width: int = 40) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def payload_text(data: bytes, content_type: str, width: int = 40) -> str:
    v = payload_value(data, content_type)
    return short(v if isinstance(v, str) else json.dumps(v, ensure_ascii=False), width)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], empty: str = "(none)") -> None:
    """Print rows as aligned columns under a header (or ``empty`` when there are none)."""
    if not rows:
        print(empty, flush=True)
        return
    cells = [[str(h) for h in headers]] + [["-" if v is None or v == "" else str(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for r in cells:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    sys.stdout.flush()


def fields_table(pairs: Sequence[tuple[str, Any]]) -> None:
    """Print one object as ``name: value`` lines."""
    width = max(len(k) for k, _ in pairs)
    for k, v in pairs:
        shown = "-" if v is None or v == "" or v == () or v == [] or v == {} else v
        if isinstance(shown, list | tuple):
            shown = ", ".join(str(x) for x in shown)
        elif isinstance(shown, dict):
            shown = json.dumps(jsonable(shown), ensure_ascii=False)
        elif isinstance(shown, datetime):
            shown = when(shown)
        elif isinstance(shown, enum.Enum):
            shown = shown.value
        print(f"{k + ':':<{width + 1}} {shown}")
    sys.stdout.flush()


def parse_time(text: str) -> datetime:
    """An ISO 8601 time (UTC when no offset is given); an argparse ``type``, so a bad value is a
    usage error (exit 2)."""
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO 8601 time: {text!r} (e.g. 2026-01-31T12:00:00Z or 2026-01-31)"
        ) from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw]?)$")
DURATION_FORMS = "seconds, or a number and a unit: 90s, 15m, 2h, 7d, 2w"


def duration(text: str) -> float:
    """An argparse ``type``: a duration in seconds, written ``90``, ``1.5`` or with a unit (``90s``,
    ``15m``, ``2h``, ``7d``, ``2w``). Every duration option takes these forms (``tokens --expires``
    too, in ``broker/commands/tokens.py``); a bad one is a usage error (exit 2)."""
    m = _DURATION.match(text.strip().lower())
    if m is None:
        why = "a duration cannot be negative" if text.strip().startswith("-") else "not a duration"
        raise argparse.ArgumentTypeError(f"{why}: {text!r} ({DURATION_FORMS})")
    return float(m.group(1)) * _UNIT_S[m.group(2)]


def time_or_delay(text: str) -> datetime:
    """``parse_time``, or ``+DURATION`` for that long from now (``+90s``, ``+15m``, ``+2h``)."""
    if text.startswith("+"):
        return datetime.now(UTC) + timedelta(seconds=duration(text[1:]))
    return parse_time(text)


def positive_duration(text: str) -> float:
    """``duration``, above zero."""
    seconds = duration(text)
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0: {text!r} ({DURATION_FORMS})")
    return seconds


def read_payload(text: str | None, content_type: str) -> tuple[bytes, str]:
    """A payload argument: ``-`` reads stdin, ``@path`` reads a file, else the text itself.

    Without ``--content-type``, text that parses as JSON is sent as
    ``application/json``, other text as ``text/plain``, file bytes that are not
    UTF-8 as ``application/octet-stream``; text starting with ``{`` or ``[`` that
    does not parse is refused (a UsageError), since it was meant as JSON.
    """
    if text is None:
        return b"", content_type
    if text == "-":
        data = sys.stdin.buffer.read()
    elif text.startswith("@"):
        try:
            with open(text[1:], "rb") as f:
                data = f.read()
        except OSError as exc:
            raise UsageError(f"cannot read {text[1:]}: {exc.strerror}") from None
    else:
        data = text.encode()
    if content_type:
        return data, content_type
    try:
        decoded = data.decode("utf-8")
    except UnicodeDecodeError:
        return data, "application/octet-stream"
    try:
        json.loads(decoded)
    except ValueError as exc:
        if decoded.lstrip().startswith(("{", "[")):  # meant as JSON: sending it as text would hide the slip
            raise UsageError(
                f"the payload looks like JSON but is not ({exc}): fix it, or give --content-type text/plain"
                " to send it as text"
            ) from None
        return data, "text/plain; charset=utf-8"
    return data, "application/json"


async def limited(stream: Any, count: int | None, timeout: float | None) -> Any:
    """Items of a stream, stopping after ``count`` items or ``timeout`` seconds (whichever first)."""
    seen = 0
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    try:
        while count is None or seen < count:
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return
            try:
                item = await asyncio.wait_for(stream.__anext__(), remaining)
            except StopAsyncIteration:
                return
            except TimeoutError:
                return
            seen += 1
            yield item
    finally:
        await stream.aclose()


PAGE_MAX = 1000  # the broker's largest page (page_size of every List call)


def paging_options(p: argparse.ArgumentParser, default: int) -> None:
    """``--limit`` and ``--page-token`` of a listing (read by ``take``)."""
    p.add_argument(
        "--limit", type=positive_int, default=default, help=f"show at most this many (default {default})"
    )
    p.add_argument(
        "--page-token",
        default="",
        metavar="TOKEN",
        help="go on where a listing cut short by --limit stopped (it prints the token)",
    )


async def take(fetch: Callable[..., Awaitable[Any]], ns: argparse.Namespace) -> list[Any]:
    """Up to ``ns.limit`` items of a paged list from ``ns.page_token`` on; ``fetch(page_size=,
    page_token=)`` returns a Page. When more match, says so on stderr with the token of the next
    ones (stdout keeps only the list, so ``--json`` stays one document)."""
    found: list[Any] = []
    token = ns.page_token
    while True:
        page = await fetch(page_size=min(ns.limit - len(found), PAGE_MAX), page_token=token)
        found += page.items
        token = page.next_page_token
        if not token or len(found) >= ns.limit:
            break
    if token:
        sys.stdout.flush()
        error(f"the first {len(found)} shown; more match: --page-token {token} shows the next ones")
    return found
