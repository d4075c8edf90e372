"""Concurrency limits: what a limit is, the input that sets one, and what a key's usage reads as.

The rules that apply them (which limit governs a task, the token bucket, fair share between keys)
are ``broker.domain.fairness``'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import AfterValidator, Field, StringConstraints, model_validator

from ..clock import US_PER_S
from .common import Capability, Input

LIMIT_NAME_PATTERN = r"^[A-Za-z0-9._:\-]+$"
MIN_PER_US = 1_000  # 1 ms
MAX_PER_US = 24 * 3600 * US_PER_S
MAX_FIGURE = 1_000_000  # running tasks, starts per period, bucket size


def _pattern_rule(value: str) -> str:
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError("must not contain control characters")
    if value.strip("*") == "" and len(value) > 1:
        raise ValueError("use one '*' for every key")
    return value


class LimitInput(Input):
    """SetConcurrencyLimit's limit, checked: exactly one subject, at least one bound."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=LIMIT_NAME_PATTERN)]
    key: (
        Annotated[str, StringConstraints(min_length=1, max_length=128), AfterValidator(_pattern_rule)] | None
    ) = None
    capability: Capability | None = None
    max_running: Annotated[int, Field(ge=0, le=MAX_FIGURE)] = 0
    rate: Annotated[int, Field(ge=0, le=MAX_FIGURE)] = 0
    per_us: Annotated[int, Field(ge=MIN_PER_US, le=MAX_PER_US)] | None = None
    burst: Annotated[int, Field(ge=0, le=MAX_FIGURE)] = 0

    @model_validator(mode="after")
    def _one_subject_and_a_bound(self) -> LimitInput:
        if (self.key is None) == (self.capability is None):
            raise ValueError("give exactly one of key and capability")
        if not self.max_running and not self.rate:
            raise ValueError("give max_running, rate, or both")
        if self.rate and self.per_us is None:
            raise ValueError("per: a rate needs its period (1 ms - 1 day)")
        if not self.rate and self.burst:
            raise ValueError("burst: only with a rate")
        return self


class SetLimitInput(Input):
    limit: LimitInput


@dataclass(frozen=True)
class Limit:
    """A stored limit. ``key`` (a key or a pattern with ``*``) or ``capability``; None for an
    absent bound."""

    name: str
    key: str | None
    capability: str | None
    max_running: int | None
    rate: int | None
    per_us: int | None
    burst: int | None  # the bucket's size (the rate when not given)
    created_at: int
    updated_at: int

    @classmethod
    def of(cls, inp: LimitInput, created_at: int, updated_at: int) -> Limit:
        return cls(
            name=inp.name,
            key=inp.key,
            capability=inp.capability,
            max_running=inp.max_running or None,
            rate=inp.rate or None,
            per_us=inp.per_us if inp.rate else None,
            burst=(inp.burst or inp.rate) if inp.rate else None,
            created_at=created_at,
            updated_at=updated_at,
        )


@dataclass(frozen=True)
class KeyUsage:
    """One concurrency key now: its running and waiting tasks, the limit that governs it (None:
    no limit), and with a rate, the starts its bucket holds."""

    key: str
    running: int
    waiting: int
    limit: Limit | None = None
    tokens: float | None = None
