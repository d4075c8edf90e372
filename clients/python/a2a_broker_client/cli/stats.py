"""``a2a-broker stats``: the broker's overview (agents, messages, tasks), read from its /metrics.

The HTTP listener's address is ``--http`` (default ``$A2A_BROKER_HTTP_ADDRESS``, else
127.0.0.1:8080); ``--token`` is sent as a bearer token (an admin's, or the broker's
``--metrics-token``). Only the standard library is used: no metrics client to install.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import urllib.error
import urllib.request
from typing import Any

from ..security import TOKEN_ENV
from ._common import EXIT_OK, EXIT_REFUSED, EXIT_UNREACHABLE, connection, error, print_json, table

HTTP_ENV = "A2A_BROKER_HTTP_ADDRESS"
DEFAULT_HTTP = "127.0.0.1:8080"
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})?\s+(\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
# (section, metric, label holding the row's name)
SECTIONS = [
    ("agents", "a2a_agents", "status"),
    ("tasks", "a2a_tasks", "status"),
]
MESSAGE_GAUGES = {
    "ready": "a2a_messages_ready",
    "unacked": "a2a_messages_unacked",
    "scheduled": "a2a_messages_scheduled",
    "dead_letters": "a2a_messages_dead_letters",
}


def add(subparsers: Any, common: argparse.ArgumentParser) -> None:
    p = subparsers.add_parser(
        "stats", parents=[common], help="the broker's overview: agents, messages and tasks (from /metrics)"
    )
    p.add_argument(
        "--http", default=None, help=f"the broker's HTTP listener [env {HTTP_ENV}; default {DEFAULT_HTTP}]"
    )
    p.set_defaults(func=_run)


def parse(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Samples of Prometheus' text format: (name, labels, value)."""
    out = []
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if m and not line.startswith("#"):
            labels = dict(_LABEL.findall(m.group(2) or ""))
            out.append((m.group(1), labels, float(m.group(3))))
    return out


def overview(samples: list[tuple[str, dict[str, str], float]]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {"agents": {}, "messages": {}, "tasks": {}}
    for section, metric, label in SECTIONS:
        for name, labels, value in samples:
            if name == metric:
                out[section][labels.get(label, "")] = int(value)
    for key, metric in MESSAGE_GAUGES.items():
        out["messages"][key] = int(sum(v for n, _, v in samples if n == metric))
    return out


def _fetch(url: str, token: str | None) -> str:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return str(resp.read().decode())


def _run(ns: argparse.Namespace) -> int:
    connection(ns)
    http = ns.http or os.environ.get(HTTP_ENV) or DEFAULT_HTTP
    token = ns.token or os.environ.get(TOKEN_ENV)
    try:
        text = asyncio.run(asyncio.to_thread(_fetch, f"http://{http}/metrics", token))
    except urllib.error.HTTPError as exc:
        error(f"the broker refused /metrics: {exc.code} {exc.reason} (an admin token or --metrics-token?)")
        return EXIT_REFUSED
    except (urllib.error.URLError, OSError) as exc:
        error(f"cannot reach the broker's HTTP listener at {http} ({exc}). Set --http or {HTTP_ENV}.")
        return EXIT_UNREACHABLE
    view = overview(parse(text))
    if ns.json:
        print_json(view)
        return EXIT_OK
    for section, counts in view.items():
        print(section)
        table(["", "count"], [(k, v) for k, v in counts.items()])
    return EXIT_OK
