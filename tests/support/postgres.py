"""A real PostgreSQL server for tests: Debian's PostgreSQL 15, a throwaway cluster on a free port.

    server = PostgresServer.start()            # initdb + pg_ctl start; a few seconds
    url = server.create_database()             # a fresh, empty database per test
    server.stop()

initdb refuses to run as root, so as root the cluster is made and run by the `postgres` user
(runuser), in a directory of its own directly under the system temp dir (pytest's tmp dirs are
0700 root, which that user can't enter); the socket goes there too rather than /run/postgresql.
scripts/test-env.sh installs the `postgresql` package.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg

_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def _binary(name: str) -> str:
    for directory in _BIN_DIRS:
        if (directory / name).exists():
            return str(directory / name)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} not found: install Debian's postgresql (scripts/test-env.sh does)")
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_postgres(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


@dataclass
class PostgresServer:
    directory: Path
    port: int

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    @classmethod
    def start(cls) -> PostgresServer:
        root = Path(tempfile.mkdtemp(prefix="firebox-pg-"))
        data = root / "data"
        if os.geteuid() == 0:
            shutil.chown(root, "postgres", "postgres")
        _check(
            _as_postgres([_binary("initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8"])
        )
        port = _free_port()
        _check(
            _as_postgres(
                [
                    _binary("pg_ctl"),
                    "-D",
                    str(data),
                    "-l",
                    str(root / "server.log"),
                    # fsync off: a test cluster is thrown away, and fsyncs would dominate its time.
                    "-o",
                    f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
                    "-w",
                    "start",
                ]
            ),
        )
        return cls(root, port)

    def create_database(self) -> str:
        """A new empty database; returns its URL."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")  # type: ignore[arg-type]
        return self.url(name)

    def stop(self) -> None:
        subprocess.run(
            _as_postgres([_binary("pg_ctl"), "-D", str(self.directory / "data"), "-m", "immediate", "stop"]),
            check=False,
            capture_output=True,
        )
        shutil.rmtree(self.directory, ignore_errors=True)


def _check(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{Path(argv[-1]).name if argv else ''} failed: {done.stderr.strip()[-2000:]}")
