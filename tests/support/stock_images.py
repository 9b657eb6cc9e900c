"""The stock-like images scripts/build-stock-images.sh makes (tagged with a hash of the script, so
a changed recipe means new images), built here on first use when the engine lacks them."""

from __future__ import annotations

import functools
import hashlib
import subprocess

from tests.support.executor_server import REPO

SCRIPT = REPO / "scripts" / "build-stock-images.sh"
KINDS = ("debian", "busybox", "user", "entrypoint", "volume", "noshell")


def tag() -> str:
    return hashlib.sha256(SCRIPT.read_bytes()).hexdigest()[:12]


@functools.cache
def stock_image(kind: str) -> str:
    """The image name for `kind`, building every stock image once if any is missing (as root;
    scripts/test-env.sh does it in CI, so this normally only looks)."""
    assert kind in KINDS, kind
    built = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=900)
    if built.returncode != 0:
        raise RuntimeError(f"build-stock-images.sh failed:\n{built.stderr[-4000:]}")
    assert built.stdout.strip() == tag(), (built.stdout, tag())
    return f"firebox-stock-{kind}:{tag()}"
