"""Broker-issued access tokens (``--auth token``).

A token reads ``a2a.<id>.<secret>``: the id finds the stored record, the secret proves
possession. The secret is 32 random bytes (256 bits), so only its SHA-256 digest is stored: with
that much entropy no dictionary or brute-force search can invert the digest, so a slow password
hash (bcrypt, argon2) would add nothing but latency to every cache miss. Digests are compared
in constant time.

Token records are cached for ``auth_cache_s`` (expiry is still checked on every call).
Revocation takes effect at once, and the cache is dropped: on SQLite whenever the marker file
``<db>.tokens-changed`` (which ``a2a-broker tokens revoke`` touches) changes its modification time
(one ``stat`` a call); on PostgreSQL when the revocation's notification reaches the broker (or its
poll finds one, ``storage/postgres/relay.py``); on any backend when this broker revokes (the Admin
RPC). The streams opened with a revoked token end within a second (``streams.py``).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Awaitable, Callable

from ..errors import Unauthenticated
from ..storage.base import TokenRecord
from .identity import Identity, Role, check_subject

PREFIX = "a2a"
MAX_NOTE = 512
_CACHE_MAX = 10_000


def new_secret() -> tuple[str, str, str]:
    """A new token: (token_id, the token to hand out, the secret's digest to store)."""
    token_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return token_id, f"{PREFIX}.{token_id}.{secret}", digest(secret)


def issue(
    subject: str | None, role: Role, ttl_s: float | None, note: str, now_us: int
) -> tuple[TokenRecord, str]:
    """A new token's record and the token to hand out (shown once). ValueError naming the field
    and the rule for a subject that is missing or malformed, a lifetime not above zero."""
    if not subject and role in (Role.AGENT, Role.ORCHESTRATOR):
        raise ValueError(f"subject: needed for the role {role.value} (the agent id it acts as)")
    try:
        subject = check_subject(subject or role.value)
    except ValueError as exc:
        raise ValueError(f"subject: {exc}") from None
    if ttl_s is not None and ttl_s <= 0:
        raise ValueError(f"ttl: must be more than 0 seconds (got {ttl_s})")
    if len(note) > MAX_NOTE:
        raise ValueError(f"note: at most {MAX_NOTE} characters (got {len(note)})")
    expires = now_us + int(ttl_s * 1_000_000) if ttl_s is not None else None
    token_id, token, secret_hash = new_secret()
    return TokenRecord(token_id, secret_hash, subject, role.value, now_us, expires, None, note), token


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse(token: str) -> tuple[str, str] | None:
    """(token_id, secret) of a well-formed token, else None."""
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def marker_path(db_path: str) -> str:
    return f"{db_path}.tokens-changed"


def touch_marker(db_path: str) -> None:
    """Tell a running broker that tokens changed (its cache is dropped on its next call)."""
    path = marker_path(db_path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.write(fd, str(time.time_ns()).encode())
    finally:
        os.close(fd)
    os.utime(path, ns=(time.time_ns(), time.time_ns()))


class TokenAuthenticator:
    """Bearer token -> Identity, from the token store, with a short cache of the records.

    The cache holds records by token id, unknown ids too: a token presented again (valid, wrong,
    revoked or made up) costs no storage read for ``cache_s``; only the secret's digest is
    computed again. Expiry is checked on every call. The cache is dropped when tokens change (the
    marker file, ``changed()``), and ``generation`` counts those changes for the open streams
    (``streams.OpenStreams``), which ``withdrawn`` tells which of their tokens are no longer valid.
    """

    via = "token"

    def __init__(
        self,
        fetch: Callable[[str], Awaitable[TokenRecord | None]],
        cache_s: float,
        marker: str | None,
    ) -> None:
        self._fetch = fetch
        self._cache_s = cache_s
        self.recheck_s = cache_s  # how often open streams' tokens are read again regardless
        self._marker = marker
        if marker is not None and not os.path.exists(marker):
            touch_marker(marker.removesuffix(".tokens-changed"))  # a stat that fails costs more
        self._marker_mtime: int | None = self._mtime()
        self._generation = 0
        # token id -> (its record, None if there is none; trusted until (monotonic))
        self._cache: dict[str, tuple[TokenRecord | None, float]] = {}
        # token id -> (its secret, its identity, trusted until): a valid token presented again
        # costs no digest
        self._verified: dict[str, tuple[str, Identity, float]] = {}
        self._reading: dict[str, asyncio.Future[TokenRecord | None]] = {}
        self.fetches = 0  # storage reads (tests, the bench)

    def _mtime(self) -> int | None:
        if self._marker is None:
            return None
        try:
            return os.stat(self._marker).st_mtime_ns
        except OSError:
            return None

    def generation(self) -> int:
        """A number that changes whenever tokens were seen to change (one ``stat`` of the marker)."""
        if self._marker is not None:
            mtime = self._mtime()
            if mtime != self._marker_mtime:
                self._marker_mtime = mtime
                self.changed()
        return self._generation

    def changed(self) -> None:
        """Tokens changed (a revocation, here or on another broker of the database): forget what
        was read, and let the open streams look at their tokens again."""
        self._cache.clear()
        self._verified.clear()
        self._generation += 1

    def cached(self, token: str) -> Identity | None:
        """The identity, when the cache can tell without storage (None: ``authenticate`` must look);
        Unauthenticated when it tells the token is not valid."""
        self.generation()
        parsed = parse(token)
        if parsed is None:
            raise Unauthenticated("authorization: not a token this broker issued")
        token_id, secret = parsed
        now = time.monotonic()
        known = self._verified.get(token_id)
        if known is not None and now < known[2] and hmac.compare_digest(known[0], secret):
            who = known[1]
            if who.expires_us is None or time.time_ns() // 1000 < who.expires_us:
                return who
        hit = self._cache.get(token_id)
        if hit is None or now >= hit[1]:
            return None
        who = _verify(hit[0], secret)
        if len(self._verified) >= _CACHE_MAX:
            self._verified.clear()
        self._verified[token_id] = (secret, who, hit[1])
        return who

    def seen(self, token: str) -> bool:
        """Whether this token was valid when last read (its next look-up is not a stranger's)."""
        parsed = parse(token)
        if parsed is None:
            return False
        hit = self._cache.get(parsed[0])
        return (
            hit is not None
            and hit[0] is not None
            and hmac.compare_digest(hit[0].secret_hash, digest(parsed[1]))
        )

    async def authenticate(self, token: str) -> Identity:
        who = self.cached(token)
        if who is not None:
            return who
        token_id, secret = parse(token) or ("", "")  # parsed by cached() already
        return _verify(await self._load(token_id), secret)

    async def _load(self, token_id: str) -> TokenRecord | None:
        """The record from storage; concurrent calls for one id share one read."""
        read = self._reading.get(token_id)
        if read is None:
            read = self._reading[token_id] = asyncio.ensure_future(self._read(token_id))
            read.add_done_callback(lambda _: self._reading.pop(token_id, None))
        return await asyncio.shield(read)

    async def _read(self, token_id: str) -> TokenRecord | None:
        self.fetches += 1
        rec = await self._fetch(token_id)
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[token_id] = (rec, time.monotonic() + self._cache_s)
        self._verified.pop(token_id, None)  # verified against the record before
        return rec

    async def withdrawn(self, token_ids: list[str]) -> dict[str, str]:
        """Of these token ids, those no longer valid (revoked, expired, gone), each with why."""
        out: dict[str, str] = {}
        for token_id in token_ids:
            why = _invalid(await self._load(token_id), token_id)
            if why is not None:
                out[token_id] = why
        return out


def _invalid(rec: TokenRecord | None, token_id: str) -> str | None:
    if rec is None:
        return "authorization: unknown token"
    if rec.revoked_at is not None:
        return f"authorization: token {token_id} was revoked"
    if rec.expires_at is not None and time.time_ns() // 1000 >= rec.expires_at:
        return f"authorization: token {token_id} has expired"
    return None


def _verify(rec: TokenRecord | None, secret: str) -> Identity:
    if rec is None or not hmac.compare_digest(rec.secret_hash, digest(secret)):
        raise Unauthenticated("authorization: unknown token")
    why = _invalid(rec, rec.token_id)
    if why is not None:
        raise Unauthenticated(why)
    return Identity(rec.subject, Role(rec.role), "token", rec.token_id, rec.expires_at)
