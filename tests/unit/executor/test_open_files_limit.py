"""The executor lifts its soft open-files limit: every shell session holds a few descriptors."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import resource
from executor_service.server import raise_open_files_limit
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
raise_open_files_limit(cap=4096)
print("LIMITS", resource.getrlimit(resource.RLIMIT_NOFILE)[0], hard)
"""


def test_soft_limit_is_raised_to_the_hard_limit_or_the_cap() -> None:
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, check=True).stdout
    line = next(line for line in out.splitlines() if line.startswith("LIMITS "))
    soft, hard = (int(x) for x in line.split()[1:])
    assert soft == (4096 if hard < 0 else min(hard, 4096))
    assert soft > 256
