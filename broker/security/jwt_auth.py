"""JWTs from an identity provider (``--auth jwt``), verified with PyJWT.

The signature is checked against ``--jwt-key-file`` (a PEM public key, or an HMAC secret) or the
key of ``--jwt-jwks-file`` whose ``kid`` the token names; ``exp`` is required, and ``iss`` and
``aud`` when configured. The subject claim (``sub`` by default) names the agent id or id prefix;
the role claim (``role``) one of agent, orchestrator, admin, viewer (agent when absent).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jwt

from ..config import Settings
from ..errors import Unauthenticated
from .identity import Identity, Role, check_subject

_CACHE_MAX = 10_000


class JwtAuthenticator:
    via = "jwt"

    def __init__(self, settings: Settings) -> None:
        self._algorithms = [a.strip() for a in settings.jwt_algorithms.split(",") if a.strip()]
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self._sub = settings.jwt_subject_claim
        self._role = settings.jwt_role_claim
        self._cache_s = settings.auth_cache_s
        self._key: Any = None
        self._jwks: jwt.PyJWKSet | None = None
        if settings.jwt_jwks_file:
            self._jwks = jwt.PyJWKSet.from_json(Path(settings.jwt_jwks_file).read_text())
        if settings.jwt_key_file:
            raw = Path(settings.jwt_key_file).read_bytes()
            self._key = raw.strip() if b"-----BEGIN" not in raw else raw
        self._cache: dict[str, tuple[Identity, float]] = {}

    def _key_for(self, token: str) -> Any:
        if self._jwks is None:
            return self._key
        kid = jwt.get_unverified_header(token).get("kid")
        for key in self._jwks.keys:
            if key.key_id == kid or kid is None and len(self._jwks.keys) == 1:
                return key
        if self._key is not None:
            return self._key
        raise jwt.InvalidTokenError(f"no key with kid {kid!r} in the JWKS file")

    def cached(self, token: str) -> Identity | None:
        """The identity of a token verified lately (None: ``authenticate`` must verify it)."""
        hit = self._cache.get(token)
        if hit is not None and time.time() < hit[1]:
            return hit[0]
        return None

    def seen(self, token: str) -> bool:
        """Whether this token was valid when last verified."""
        return token in self._cache

    async def authenticate(self, token: str) -> Identity:
        who = self.cached(token)
        if who is not None:
            return who
        try:
            claims = jwt.decode(
                token,
                self._key_for(token),
                algorithms=self._algorithms,
                issuer=self._issuer,
                audience=self._audience,
                options={"require": ["exp"], "verify_aud": self._audience is not None},
            )
            subject = check_subject(str(claims.get(self._sub) or ""))
            role = Role(str(claims.get(self._role) or "agent"))
        except (jwt.InvalidTokenError, ValueError) as exc:
            raise Unauthenticated(f"authorization: invalid JWT ({exc})") from None
        who = Identity(subject, role, "jwt", expires_us=int(float(claims["exp"]) * 1_000_000))
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        # Trusted until the cache period ends or the token expires, whichever comes first.
        self._cache[token] = (who, min(time.time() + self._cache_s, float(claims["exp"])))
        return who
