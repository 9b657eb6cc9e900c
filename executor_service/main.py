"""`firebox-executor`: parse the configuration and serve."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from executor_service.config import load


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point; returns the exit status."""
    config = load(argv)
    # Imported after parsing, so that --help and usage errors answer at once.
    from executor_service.backends import BackendUnavailable
    from executor_service.server import serve
    from firebox.common.server import run_service

    return run_service("firebox-executor", config.listen, lambda: serve(config), (BackendUnavailable,))


if __name__ == "__main__":
    sys.exit(main())
