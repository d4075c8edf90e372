"""How psycopg writes a named parameter (the rules' SQL fragments take it: ``broker.domain.messages``)."""

from __future__ import annotations


def named(name: str) -> str:
    """A named parameter, as psycopg writes it."""
    return f"%({name})s"
