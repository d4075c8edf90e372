"""Token management over the API (the Admin service): issue, list and revoke, with the same rules
as the ``a2a-broker tokens`` command (``tokens.issue``). A revocation here drops this broker's
cache of tokens at once; the other brokers of a shared database hear of it from the revocation's
own transaction (``storage.base.TokenStore.revoke_token``)."""

from __future__ import annotations

from ..clock import Clock
from ..errors import InvalidArgument, NotFound
from ..storage.base import TokenRecord, TokenStore
from .identity import Role
from .tokens import issue


class TokenAdmin:
    def __init__(self, storage: TokenStore, authenticator: object | None, clock: Clock | None = None) -> None:
        self.storage = storage
        self.authenticator = authenticator  # the broker's, when it checks tokens (--auth token)
        self.clock = clock or Clock()

    async def create(
        self, subject: str, role: Role, ttl_s: float | None, note: str
    ) -> tuple[TokenRecord, str]:
        """The new token's record, and the token itself (to be shown once)."""
        try:
            rec, token = issue(subject, role, ttl_s, note, self.clock.now_us())
        except ValueError as exc:
            field, _, rule = str(exc).partition(": ")
            raise InvalidArgument(field, rule) from None
        await self.storage.create_token(rec)
        return rec, token

    async def list(self) -> list[TokenRecord]:
        return await self.storage.list_tokens()

    async def revoke(self, token_id: str) -> TokenRecord:
        rec = await self.storage.revoke_token(token_id, self.clock.now_us())
        if rec is None:
            raise NotFound(f"token {token_id!r} not found")
        changed = getattr(self.authenticator, "changed", None)
        if changed is not None:  # this broker refuses it from the next call on
            changed()
        return rec
