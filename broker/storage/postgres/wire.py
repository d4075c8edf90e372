"""What brokers sharing one PostgreSQL database tell each other, as written on the NOTIFY channel.

A notification's payload is lines: the first is the sender's tag (each broker draws one at
start; ``-`` is nobody's: the ``a2a-broker tokens`` command, a revocation's own transaction), each
other line either a wake-up key (``inbox:<agent>``, ``ready:<capability>``..., see
``broker/core/wakeups.py``; ``*``: wake everything) or a message ``!<kind> <body>`` whose body is
one line of text (JSON, for the kinds that carry a value). A payload stays under PostgreSQL's 8000
bytes: what does not fit goes in the next notification.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

CHANNEL = "a2a_broker_wakeups"
MAX_PAYLOAD = 7900  # PostgreSQL refuses a payload of 8000 bytes or more
EVERYTHING = "*"
NOBODY = "-"  # the tag of a notification sent by no broker

# Kinds of message (the body of each is the cluster's business: broker/core/cluster.py).
TOKENS = "tokens"  # tokens changed (a revocation): drop what you cached
HISTORY = "history"  # task transitions committed: read them (postgres/history.py)


def line(kind: str, body: str = "") -> str:
    """A message's line (``body`` must not hold a newline: JSON written compactly has none)."""
    return f"!{kind} {body}"


def payloads(tag: str, keys: Iterable[str], messages: Iterable[str]) -> Iterator[str]:
    """The notifications that carry ``keys`` and ``messages`` (lines from ``line``), each under
    MAX_PAYLOAD bytes. Too many keys become ``*``; a message too long for one notification is
    dropped (its sender keeps messages short: what it names can be read from the database)."""
    keys = sorted(keys)
    head = f"{tag}\n"
    body = "\n".join(keys)
    if len(head) + len(body.encode()) > MAX_PAYLOAD:
        body = EVERYTHING
    chunk, size = [body] if body else [], len(head) + len(body.encode())
    for m in messages:
        n = len(m.encode()) + 1
        if len(head) + n > MAX_PAYLOAD:
            continue
        if size + n > MAX_PAYLOAD:
            yield head + "\n".join(chunk)
            chunk, size = [], len(head)
        chunk.append(m)
        size += n
    if chunk:
        yield head + "\n".join(chunk)


def parse(payload: str) -> tuple[str, list[str], list[tuple[str, str]]]:
    """(tag, wake-up keys, messages as (kind, body)) of a notification."""
    tag, _, rest = payload.partition("\n")
    keys: list[str] = []
    messages: list[tuple[str, str]] = []
    for ln in rest.split("\n") if rest else ():
        if ln.startswith("!"):
            kind, _, body = ln[1:].partition(" ")
            messages.append((kind, body))
        elif ln:
            keys.append(ln)
    return tag, keys, messages


def notify_sql(kind: str) -> str:
    """A statement that sends message ``kind`` (no body) from nobody, at its transaction's commit."""
    return f"SELECT pg_notify('{CHANNEL}', '{NOBODY}' || chr(10) || '{line(kind)}')"
