"""Test certificates made at test time by scripts/make-certs.sh (the openssl CLI; the
`cryptography` package is not installed here)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MAKE_CERTS = REPO / "scripts" / "make-certs.sh"


@dataclass(frozen=True)
class CertSet:
    """One CA and the server and client certificates it signed."""

    dir: Path

    @property
    def ca(self) -> Path:
        return self.dir / "ca.pem"

    @property
    def server_cert(self) -> Path:
        return self.dir / "server.pem"

    @property
    def server_key(self) -> Path:
        return self.dir / "server-key.pem"

    @property
    def client_cert(self) -> Path:
        return self.dir / "client.pem"

    @property
    def client_key(self) -> Path:
        return self.dir / "client-key.pem"


def make_certs(directory: Path, *names: str) -> CertSet:
    """A fresh CA with a server certificate for `names` (default localhost, 127.0.0.1, executor,
    agent) and a client certificate, in `directory`."""
    subprocess.run(
        ["bash", str(MAKE_CERTS), str(directory), *names], check=True, capture_output=True, timeout=60
    )
    return CertSet(directory)
