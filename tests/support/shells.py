"""Minimal workspace backends for testing shell sessions on real processes.

Each implements only what the session layer uses (`open_shell`, `oom_kills`): a local /bin/sh
through PipeTransport, a Docker container through DockerExecTransport or FifoTransport, and a bubblewrap
sandbox through PipeTransport. No fakes: every shell is a real process.
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from executor_service.backend import Policy, WorkspaceInfo
from executor_service.transports import DockerExecTransport, FifoTransport, PipeTransport

TEST_IMAGE = "firebox-busybox:latest"
PATH = "/usr/local/bin:/usr/bin:/bin"


def workspace_info(workspace_id: str, backend: str) -> WorkspaceInfo:
    return WorkspaceInfo(
        id=workspace_id,
        name=workspace_id,
        image=TEST_IMAGE,
        state="running",
        backend=backend,
        policy=Policy(),
        isolation="test",
        created=dt.datetime.now(dt.UTC),
    )


class LocalShellBackend:
    """Shells run as plain local processes in `directory` (no isolation: tests only)."""

    name = "local"

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def open_shell(
        self, workspace: WorkspaceInfo, argv: list[str], env: dict[str, str], *, session: bool = False
    ) -> Any:
        return await PipeTransport.spawn(
            argv, env={"PATH": PATH, "HOME": str(self.directory), **env}, cwd=str(self.directory)
        )

    async def oom_kills(self, workspace: WorkspaceInfo) -> int | None:
        return None


class BwrapShellBackend:
    """Shells in a bubblewrap sandbox: new namespaces, read-only /usr, `directory` at /workspace."""

    name = "bwrap"

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def argv(self, argv: list[str], env: dict[str, str]) -> list[str]:
        cmd = [
            shutil.which("bwrap") or "bwrap",
            "--unshare-all",
            "--die-with-parent",
            "--ro-bind",
            "/usr",
            "/usr",
        ]
        for link in ("bin", "lib", "lib64", "sbin"):
            if Path("/" + link).is_symlink():
                cmd += ["--symlink", f"usr/{link}", "/" + link]
        cmd += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
        cmd += ["--bind", str(self.directory), "/workspace", "--chdir", "/workspace", "--clearenv"]
        for key, value in {"PATH": PATH, "HOME": "/workspace", **env}.items():
            cmd += ["--setenv", key, value]
        return [*cmd, "--", *argv]

    async def open_shell(
        self, workspace: WorkspaceInfo, argv: list[str], env: dict[str, str], *, session: bool = False
    ) -> Any:
        return await PipeTransport.spawn(self.argv(argv, env), env={"PATH": PATH})

    async def oom_kills(self, workspace: WorkspaceInfo) -> int | None:
        return None


class DockerShellBackend:
    """Shells as `docker exec` processes in one existing container. With `io_dir` (a host directory
    the container has bind-mounted at `io_mount`), session shells use FifoTransport, as the
    executor's docker backend does; without, the exec socket."""

    name = "docker"

    def __init__(
        self,
        client: Any,
        container_id: str,
        user: str = "1000:1000",
        io_dir: Path | None = None,
        io_mount: str = "/run/firebox",
    ) -> None:
        self.client = client
        self.container_id = container_id
        self.user = user
        self.io_dir = io_dir
        self.io_mount = io_mount

    async def open_shell(
        self, workspace: WorkspaceInfo, argv: list[str], env: dict[str, str], *, session: bool = False
    ) -> Any:
        env = {"PATH": PATH, **env}
        if session and self.io_dir is not None:
            return await FifoTransport.open(
                self.client,
                self.container_id,
                host_dir=self.io_dir,
                container_dir=self.io_mount,
                argv=argv,
                env=env,
                user=self.user,
            )
        return await DockerExecTransport.open(
            self.client, self.container_id, argv=argv, env=env, user=self.user
        )

    async def oom_kills(self, workspace: WorkspaceInfo) -> int | None:
        return None


def docker_available() -> bool:
    try:
        return subprocess.run(["docker", "version"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def bwrap_available() -> bool:
    if shutil.which("bwrap") is None:
        return False
    with tempfile.TemporaryDirectory() as directory:
        argv = BwrapShellBackend(Path(directory)).argv(["/bin/sh", "-c", "true"], {})
        return subprocess.run(argv, capture_output=True).returncode == 0
