"""`firebox-agent`: parse the configuration and serve."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence

from agent_service.config import load


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point; returns the exit status."""
    config = load(argv)
    # Imported after parsing, so that --help and usage errors answer at once.
    from agent_service.server import serve
    from firebox.common import logging as fb_logging
    from firebox.common.errors import FireboxError

    try:
        asyncio.run(serve(config))
    except FireboxError as exc:  # a setting that cannot work, e.g. an unreadable TLS file
        print(f"firebox-agent: {exc.message}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"firebox-agent: cannot serve on {config.listen}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        fb_logging.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
