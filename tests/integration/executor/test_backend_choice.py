"""Backend choice: auto takes Docker when its engine answers, else bubblewrap, and says so."""

from __future__ import annotations

import shutil

import pytest

from executor_service.backends import BackendUnavailable, choose_backend
from executor_service.backends.bwrap import BwrapBackend
from executor_service.backends.docker import DockerBackend


@pytest.mark.docker
async def test_auto_picks_docker_when_the_engine_answers(tmp_path):
    backend = await choose_backend("auto", tmp_path)
    try:
        assert isinstance(backend, DockerBackend)
        # The owner id lives in the config dir, so a restart owns the same workspaces.
        assert (tmp_path / "instance-id").read_text().strip() == backend.owner
    finally:
        await backend.close()


@pytest.mark.bwrap
@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")
async def test_auto_falls_back_to_bwrap_without_docker(tmp_path, monkeypatch):
    # (The loud log line is checked on a real process in tests/e2e/executor.)
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    backend = await choose_backend("auto", tmp_path)
    assert isinstance(backend, BwrapBackend)


async def test_docker_requested_without_engine_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    with pytest.raises(BackendUnavailable, match="--backend docker"):
        await choose_backend("docker", tmp_path)
