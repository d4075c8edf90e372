"""Subjects and subscription filters: what a subject is, which filters match it, and the index
that finds the matching subscriptions of a subject without looking at the others.

A *subject* names what a message is about, hierarchically: dot-separated tokens, such as
``orders.eu.created``. A *filter* is a subject whose tokens may also be ``*`` (exactly one token)
or, last, ``>`` (one or more tokens: the rest). ``orders.*.created`` matches
``orders.eu.created``; ``orders.>`` matches ``orders.eu`` and ``orders.eu.created`` but not
``orders``. (NATS's subjects, which SLIM's hierarchical names resemble.)

Pure: no I/O. The index is a plain trie of the filters' tokens; storage keeps one per broker, in
step with the stored subscriptions (broker/storage/sql/subject_index.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..errors import InvalidArgument

MAX_SUBJECT = 256  # characters of a subject or a filter
MAX_TOKENS = 16
SINGLE = "*"  # one token
REST = ">"  # one or more tokens, only last
TOKEN_CHARS = "letters, digits or _ - : @"
_TOKEN = re.compile(r"[A-Za-z0-9_\-:@]+")
SEPARATOR = "."


def _tokens(value: str, field: str, what: str) -> list[str]:
    if not value:
        raise InvalidArgument(field, "is required")
    if len(value) > MAX_SUBJECT:
        raise InvalidArgument(field, f"must be at most {MAX_SUBJECT} characters")
    tokens = value.split(SEPARATOR)
    if len(tokens) > MAX_TOKENS:
        raise InvalidArgument(field, f"must have at most {MAX_TOKENS} dot-separated tokens")
    if any(not t for t in tokens):
        raise InvalidArgument(field, f"must be dot-separated {what} with no empty token (got {value!r})")
    return tokens


def check_subject(subject: str, field: str = "target.subject") -> str:
    """A subject to publish to: 1-16 dot-separated tokens of letters, digits or ``_ - : @``, at most
    256 characters in all. Wildcards are for filters only."""
    for token in _tokens(subject, field, "tokens"):
        if not _TOKEN.fullmatch(token):
            rule = "wildcards are for subscription filters only" if token in (SINGLE, REST) else ""
            raise InvalidArgument(
                field, rule or f"tokens must be {TOKEN_CHARS} (got {token!r} in {subject!r})"
            )
    return subject


def check_filter(flt: str, field: str = "filter") -> tuple[str, ...]:
    """A subscription filter: as a subject, each token may also be ``*``, and the last ``>``."""
    tokens = _tokens(flt, field, "tokens or wildcards")
    for i, token in enumerate(tokens):
        if token == SINGLE:
            continue
        if token == REST:
            if i != len(tokens) - 1:
                raise InvalidArgument(field, f"'>' may only be the last token (got {flt!r})")
            continue
        if not _TOKEN.fullmatch(token):
            raise InvalidArgument(
                field, f"tokens must be {TOKEN_CHARS}, '*' or a final '>' (got {token!r} in {flt!r})"
            )
    return tuple(tokens)


def matches(flt: str, subject: str) -> bool:
    """Whether a filter matches a subject (both well formed)."""
    f = flt.split(SEPARATOR)
    s = subject.split(SEPARATOR)
    for i, token in enumerate(f):
        if token == REST:
            return len(s) > i
        if i >= len(s) or (token != SINGLE and token != s[i]):
            return False
    return len(f) == len(s)


def literal_prefix(flt: str) -> tuple[str, bool]:
    """What every subject a filter matches begins with, and whether that is the whole subject
    (a filter without wildcards): ``orders.eu.`` for ``orders.eu.*``; ``""`` for ``*.created``.
    Lets a scan of stored subjects (a replay) read one range of the subject index."""
    tokens = flt.split(SEPARATOR)
    literal: list[str] = []
    for token in tokens:
        if token in (SINGLE, REST):
            return "".join(t + SEPARATOR for t in literal), False
        literal.append(token)
    return flt, True


# -- the index -------------------------------------------------------------------------------


class _Node:
    __slots__ = ("children", "star", "here", "rest")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.star: _Node | None = None
        self.here: set[int] = set()  # filters that end at this node
        self.rest: set[int] = set()  # filters that end with '>' after this node

    def empty(self) -> bool:
        return not (self.children or self.star or self.here or self.rest)


class SubjectIndex:
    """The filters of the subscriptions, as a trie of their tokens: ``match`` walks one path per
    wildcard branch of the subject's tokens, so its cost follows the filters that share the
    subject's tokens, not how many filters there are (10,000 subscriptions to other subjects
    cost a publish nothing)."""

    __slots__ = ("_root", "_filters")

    def __init__(self, filters: Iterable[tuple[int, str]] = ()) -> None:
        self._root = _Node()
        self._filters: dict[int, str] = {}
        for sub_id, flt in filters:
            self.add(sub_id, flt)

    def __len__(self) -> int:
        return len(self._filters)

    def add(self, sub_id: int, flt: str) -> None:
        if sub_id in self._filters:
            self.remove(sub_id)
        node = self._root
        for token in flt.split(SEPARATOR):
            if token == REST:
                node.rest.add(sub_id)
                break
            if token == SINGLE:
                if node.star is None:
                    node.star = _Node()
                node = node.star
            else:
                node = node.children.setdefault(token, _Node())
        else:
            node.here.add(sub_id)
        self._filters[sub_id] = flt

    def remove(self, sub_id: int) -> None:
        flt = self._filters.pop(sub_id, None)
        if flt is None:
            return
        path: list[tuple[_Node, str]] = []  # (parent, token) down to the filter's last node
        node = self._root
        for token in flt.split(SEPARATOR):
            if token == REST:
                node.rest.discard(sub_id)
                break
            child = node.star if token == SINGLE else node.children.get(token)
            if child is None:
                return
            path.append((node, token))
            node = child
        else:
            node.here.discard(sub_id)
        for parent, token in reversed(path):  # prune the nodes left empty
            child = parent.star if token == SINGLE else parent.children[token]
            if child is None or not child.empty():
                break
            if token == SINGLE:
                parent.star = None
            else:
                del parent.children[token]

    def match(self, subject: str) -> list[int]:
        """The ids of the subscriptions whose filter matches ``subject``, ascending."""
        tokens = subject.split(SEPARATOR)
        n = len(tokens)
        found: set[int] = set()
        stack = [(self._root, 0)]
        while stack:
            node, i = stack.pop()
            if i == n:
                found |= node.here
                continue
            found |= node.rest
            child = node.children.get(tokens[i])
            if child is not None:
                stack.append((child, i + 1))
            if node.star is not None:
                stack.append((node.star, i + 1))
        return sorted(found)


# -- deliveries: a subject message as one subscription receives it ---------------------------

# The id of a delivery: the subject message's id, then the subscription's number. Message ids of
# the other kinds never hold this separator (hexadecimal, or ``<send id>.<n>`` for a broadcast's
# copies), so an Ack, a Nack or a Requeue tells the kinds apart by it.
DELIVERY_SEPARATOR = ":"


def delivery_id(send_id: str, subscription_id: int) -> str:
    return f"{send_id}{DELIVERY_SEPARATOR}{subscription_id}"


def parse_delivery_id(message_id: str) -> tuple[str, int] | None:
    """(subject message id, subscription number) of a delivery's id; None for another kind of id."""
    send_id, sep, number = message_id.rpartition(DELIVERY_SEPARATOR)
    if not sep or not send_id or not number.isdigit() or len(number) > 18:
        return None
    return send_id, int(number)


def split_ids(ids: Iterable[str]) -> tuple[list[str], list[tuple[str, str, int]]]:
    """Message ids of the other kinds, and deliveries as (id, subject message id, subscription)."""
    plain: list[str] = []
    deliveries: list[tuple[str, str, int]] = []
    for message_id in ids:
        parsed = parse_delivery_id(message_id)
        if parsed is None:
            plain.append(message_id)
        else:
            deliveries.append((message_id, *parsed))
    return plain, deliveries


# -- per-key ordering ------------------------------------------------------------------------

# A delivery is *unfinished* while it may still be delivered or acked: pending or delivered. In a
# subscription that orders by key, a delivery with an ordering key is *blocked* while an earlier
# unfinished delivery with the same key exists there (it is not claimable: it is not in the claim
# index at all); when that one finishes (processed, dead-lettered, expired), the earliest
# unfinished one of the key is unblocked. So at most one delivery per key is claimable or out at
# a time, in publish order.
UNFINISHED_SQL = "status IN ('pending', 'delivered')"


def keyed(ordering: bool, ordering_key: str | None) -> str | None:
    """The key a delivery is ordered by in a subscription: the message's, if it orders by key."""
    return ordering_key if ordering and ordering_key else None


# A delivery pending again (released, requeued) goes back to its subscription, for any of its
# consumers to take (competing consumers: as an anycast copy goes back to its capability's pool).
RECIPIENT_WHEN_PENDING_SQL = "NULL"
