"""Write each service's settings table into its docs page, from the service's `SETTINGS`
(firebox/common/settings.py). With --check, write nothing and fail when a page differs.

    python scripts/gen-settings-docs.py          # make docs
    python scripts/gen-settings-docs.py --check  # make lint, and tests/unit/test_settings_docs.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agent_service import config as agent_config
from executor_service import config as executor_config
from firebox.common.settings import docs_table, replace_docs_table

ROOT = Path(__file__).resolve().parent.parent
# The docs page of each service's table: (page, module, settings, defaults).
PAGES = (
    (
        "docs/executor.md",
        "executor_service/config.py",
        executor_config.SETTINGS,
        executor_config.ExecutorConfig(),
    ),
    ("docs/agent.md", "agent_service/config.py", agent_config.SETTINGS, agent_config.AgentConfig()),
)


def stale_pages(write: bool) -> list[str]:
    """The pages whose table is not the one their settings make (rewritten when `write`)."""
    stale = []
    for page, module, settings, defaults in PAGES:
        path = ROOT / page
        text = path.read_text()
        wanted = replace_docs_table(text, module, docs_table(settings, defaults))
        if wanted != text:
            stale.append(page)
            if write:
                path.write_text(wanted)
    return stale


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when a page differs; write nothing")
    check = parser.parse_args().check
    stale = stale_pages(write=not check)
    if check and stale:
        print(f"settings tables out of date in {', '.join(stale)}: run `make docs`", file=sys.stderr)
        return 1
    for page in stale:
        print(f"wrote the settings table of {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
