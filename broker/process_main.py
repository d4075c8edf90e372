"""One broker of ``serve --processes N`` (``python -m broker.process_main INDEX``, started by the
supervisor in ``broker.processes``): its settings come as JSON on stdin; it runs as ``serve`` does."""

from __future__ import annotations

import sys

from .cli import run_broker
from .config import Settings


def main() -> int:
    settings = Settings.model_validate_json(sys.stdin.buffer.read())
    return run_broker(settings)


if __name__ == "__main__":
    sys.exit(main())
