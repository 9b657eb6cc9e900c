"""`firebox-agent`: parse the configuration and serve."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from agent_service.config import load


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["migrate"]:
        from agent_service.migrate import main as migrate

        return migrate(args[1:])
    config = load(args)
    # Imported after parsing, so that --help and usage errors answer at once.
    from agent_service.server import serve
    from firebox.common.server import run_service

    return run_service("firebox-agent", config.listen, lambda: serve(config))


if __name__ == "__main__":
    sys.exit(main())
