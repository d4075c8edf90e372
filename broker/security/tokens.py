"""Broker-issued access tokens (``--auth token``).

A token reads ``a2a.<id>.<secret>``: the id finds the stored record, the secret proves
possession. The secret is 32 random bytes (256 bits), so only its SHA-256 digest is stored: with
that much entropy no dictionary or brute-force search can invert the digest, so a slow password
hash (bcrypt, argon2) would add nothing but latency to every cache miss. Digests are compared
in constant time.

Verified tokens are cached for ``auth_cache_s`` (expiry is still checked on every call).
Revocation takes effect at once: ``a2a-broker tokens revoke`` touches ``<db>.tokens-changed``,
and the cache is dropped whenever that file's modification time changes (one ``stat`` a call).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Awaitable, Callable

from ..errors import Unauthenticated
from ..storage.base import TokenRecord
from .identity import Identity, Role

PREFIX = "a2a"
_CACHE_MAX = 10_000


def new_secret() -> tuple[str, str, str]:
    """A new token: (token_id, the token to hand out, the secret's digest to store)."""
    token_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return token_id, f"{PREFIX}.{token_id}.{secret}", digest(secret)


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
    """Bearer token -> Identity, from the token store, with a short cache."""

    via = "token"

    def __init__(
        self,
        fetch: Callable[[str], Awaitable[TokenRecord | None]],
        cache_s: float,
        marker: str | None,
    ) -> None:
        self._fetch = fetch
        self._cache_s = cache_s
        self._marker = marker
        if marker is not None and not os.path.exists(marker):
            touch_marker(marker.removesuffix(".tokens-changed"))  # a stat that fails costs more
        self._marker_mtime: int | None = self._mtime()
        # token -> (identity, trusted until (monotonic), token expiry (epoch µs) or None)
        self._cache: dict[str, tuple[Identity, float, int | None]] = {}

    def _mtime(self) -> int | None:
        if self._marker is None:
            return None
        try:
            return os.stat(self._marker).st_mtime_ns
        except OSError:
            return None

    async def authenticate(self, token: str) -> Identity:
        if self._marker is not None:
            mtime = self._mtime()
            if mtime != self._marker_mtime:
                self._marker_mtime = mtime
                self._cache.clear()
        hit = self._cache.get(token)
        if hit is not None:
            who, until, expires = hit
            if time.monotonic() < until and (expires is None or time.time_ns() // 1000 < expires):
                return who
            del self._cache[token]
        parsed = parse(token)
        if parsed is None:
            raise Unauthenticated("authorization: not a token this broker issued")
        rec = await self._fetch(parsed[0])
        now = time.time_ns() // 1000
        if rec is None or not hmac.compare_digest(rec.secret_hash, digest(parsed[1])):
            raise Unauthenticated("authorization: unknown token")
        if rec.revoked_at is not None:
            raise Unauthenticated(f"authorization: token {rec.token_id} was revoked")
        if rec.expires_at is not None and now >= rec.expires_at:
            raise Unauthenticated(f"authorization: token {rec.token_id} has expired")
        who = Identity(rec.subject, Role(rec.role), "token")
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[token] = (who, time.monotonic() + self._cache_s, rec.expires_at)
        return who
