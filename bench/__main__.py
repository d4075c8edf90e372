"""Run every benchmark suite: ``python -m bench [suite ...]``."""

from __future__ import annotations

import importlib
import sys

SUITES = ["engine", "messaging", "topics", "tasks", "fairness", "a2a", "isolation", "postgres"]


def main(argv: list[str]) -> int:
    wanted = argv or SUITES
    for name in wanted:
        try:
            mod = importlib.import_module(f"bench.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"bench.{name}":
                print(f"[bench] no suite {name!r} yet, skipped")
                continue
            raise
        mod.main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
