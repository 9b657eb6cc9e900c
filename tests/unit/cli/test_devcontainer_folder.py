"""What the client sends of a devcontainer folder (firebox.client.devcontainer): the build
context as the devcontainer spec resolves it, archived so the same files give the same bytes."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from firebox.client import devcontainer


def project(root: Path, json_text: str) -> Path:
    (root / ".devcontainer").mkdir(parents=True)
    (root / ".devcontainer" / "Dockerfile").write_text("FROM firebox-busybox:latest\n")
    (root / ".devcontainer" / "devcontainer.json").write_text(json_text)
    (root / "src").mkdir()
    (root / "src" / "main.py").write_text("print('hi')\n")
    return root


def names(context: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(context), mode="r:gz") as tar:
        return tar.getnames()


def test_the_context_one_up_holds_the_project_and_the_dockerfile_is_placed_in_it(tmp_path):
    root = project(tmp_path / "p", '{"build": {"dockerfile": "Dockerfile", "context": ".."}}')
    message = devcontainer.load(root)
    assert message.dockerfile == ".devcontainer/Dockerfile"
    assert names(message.context) == [
        ".devcontainer",
        ".devcontainer/Dockerfile",
        ".devcontainer/devcontainer.json",
        "src",
        "src/main.py",
    ]


def test_the_default_context_is_the_folder_of_devcontainer_json(tmp_path):
    root = project(tmp_path / "p", '{\n  // JSONC\n  "build": {"dockerfile": "Dockerfile",},\n}')
    message = devcontainer.load(root / ".devcontainer" / "devcontainer.json")
    assert message.dockerfile == "Dockerfile"
    assert names(message.context) == ["Dockerfile", "devcontainer.json"]


def test_the_same_files_give_the_same_bytes_whatever_their_times(tmp_path):
    root = project(tmp_path / "p", '{"build": {"dockerfile": "Dockerfile", "context": ".."}}')
    first = devcontainer.load(root).context
    os.utime(root / "src" / "main.py", (1, 1))
    assert devcontainer.load(root).context == first
    (root / "src" / "main.py").write_text("print('changed')\n")
    assert devcontainer.load(root).context != first


def test_an_image_devcontainer_sends_no_context(tmp_path):
    (tmp_path / "devcontainer.json").write_text('{"image": "firebox-busybox:latest"}')
    message = devcontainer.load(tmp_path)
    assert message.json and not message.context and not message.dockerfile


@pytest.mark.parametrize(
    ("json_text", "needle"),
    [
        ('{"build": {"dockerfile": "../../elsewhere/Dockerfile"}}', "outside build.context"),
        ('{"build": {"dockerfile": "Dockerfile", "context": "missing"}}', "not a directory"),
    ],
)
def test_what_cannot_be_sent_is_said_before_anything_is_asked(tmp_path, json_text, needle):
    root = project(tmp_path / "p", json_text)
    with pytest.raises(devcontainer.DevcontainerError, match=needle):
        devcontainer.load(root)


def test_no_devcontainer_json_is_an_error_naming_the_path(tmp_path):
    with pytest.raises(devcontainer.DevcontainerError, match=r"no devcontainer\.json"):
        devcontainer.find(tmp_path / "nowhere")


def test_a_dockerignore_leaves_out_what_it_names_as_docker_build_does(tmp_path):
    root = project(tmp_path / "p", '{"build": {"dockerfile": "Dockerfile", "context": ".."}}')
    (root / "node_modules" / "dep").mkdir(parents=True)
    (root / "node_modules" / "dep" / "index.js").write_text("x\n")
    (root / "src" / "debug.log").write_text("noise\n")
    (root / "keep.log").write_text("kept\n")
    (root / ".dockerignore").write_text("# build junk\nnode_modules\n**/*.log\n!keep.log\n\n.devcontainer\n")
    kept = names(devcontainer.load(root).context)
    # The Dockerfile and .dockerignore itself always go, even when a pattern names them.
    assert kept == [".devcontainer/Dockerfile", ".dockerignore", "keep.log", "src", "src/main.py"]
