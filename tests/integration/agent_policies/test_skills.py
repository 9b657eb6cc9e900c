"""Skills: listed in the system prompt, loaded by $name or the load_skill tool, bad ones skipped,
and a git source cloned once."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

from firebox.agent.v1 import agent_pb2
from tests.support.agent_server import agent_stub, collect, kinds, new_session, running_agent
from tests.support.fake_provider import text_reply, tool_reply

A = agent_pb2


def _skill(root: Path, folder: str, text: str) -> None:
    (root / folder).mkdir(parents=True)
    (root / folder / "SKILL.md").write_text(text)


def _skills_dir(root: Path) -> Path:
    _skill(
        root,
        "deploy",
        "---\nname: deploy\ndescription: Ship a release\n---\nDEPLOY-STEPS: build, tag, push.\n",
    )
    _skill(
        root, "review", "---\nname: review\ndescription: Review a change\n---\nREVIEW-STEPS: read the diff.\n"
    )
    _skill(root, "broken", "no front matter here\n")
    _skill(root, "zz-copy", "---\nname: deploy\ndescription: A second deploy\n---\nIMPOSTOR\n")
    return root


async def test_skills_are_listed_and_bad_ones_skipped(tmp_path, fake):
    skills = _skills_dir(tmp_path / "skills")
    async with running_agent(tmp_path / "agent", fake.base_url, skills_dir=skills) as agent:
        library = agent.loop.skills
        assert sorted(library.skills) == ["deploy", "review"]
        assert library.skills["deploy"].instructions == "DEPLOY-STEPS: build, tag, push."
        problems = "\n".join(library.problems)
        assert "broken" in problems and "no front matter" in problems
        assert "already used" in problems and "zz-copy" in problems
        stub = agent_stub(agent)
        session = await new_session(stub, system_prompt="BASE")
        fake.script(text_reply("hi"))
        await collect(stub.SendMessage(A.SendMessageRequest(session_id=session.id, content="hello")))
        system = fake.requests[-1]["messages"][0]
        assert system["role"] == "system" and system["content"].startswith("BASE")
        assert (
            "- deploy: Ship a release" in system["content"]
            and "- review: Review a change" in system["content"]
        )
        assert "IMPOSTOR" not in str(fake.requests[-1])
        assert "load_skill" in [t["function"]["name"] for t in fake.requests[-1]["tools"]]


async def test_mentioning_a_skill_brings_its_instructions_once(tmp_path, fake):
    skills = _skills_dir(tmp_path / "skills")
    async with running_agent(tmp_path / "agent", fake.base_url, skills_dir=skills) as agent:
        stub = agent_stub(agent)
        session = await new_session(stub)
        fake.script(text_reply("ok"), text_reply("ok again"))
        await collect(
            stub.SendMessage(A.SendMessageRequest(session_id=session.id, content="please $deploy it"))
        )
        contents = [m["content"] for m in fake.requests[-1]["messages"]]
        assert any("DEPLOY-STEPS" in c for c in contents)
        assert not any("REVIEW-STEPS" in c for c in contents)
        await collect(stub.SendMessage(A.SendMessageRequest(session_id=session.id, content="again $deploy")))
        again = [m["content"] for m in fake.requests[-1]["messages"]]
        assert sum("DEPLOY-STEPS" in c for c in again) == 1


async def test_load_skill_tool_returns_the_instructions(tmp_path, fake):
    skills = _skills_dir(tmp_path / "skills")
    async with running_agent(tmp_path / "agent", fake.base_url, skills_dir=skills) as agent:
        stub = agent_stub(agent)
        session = await new_session(stub)
        fake.script(tool_reply(("load_skill", {"name": "review"}, "call_skill")), text_reply("done"))
        events = await collect(
            stub.SendMessage(A.SendMessageRequest(session_id=session.id, content="review it"))
        )
        assert kinds(events)[-1] == "run_completed"
        assert "approval_requested" not in kinds(events)
        tool_message = fake.requests[-1]["messages"][-1]
        assert tool_message["tool_call_id"] == "call_skill" and "REVIEW-STEPS" in tool_message["content"]


def _git(*args: str, cwd: Path | None = None) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


async def test_git_source_is_cloned_once_and_never_fetched_again(tmp_path, fake):
    work = tmp_path / "work"
    _skill(work, "lint", "---\nname: lint\ndescription: Lint the code\n---\nLINT-V1\n")
    _git("init", "-q", str(work))
    _git("-c", "user.email=t@e", "-c", "user.name=t", "add", ".", cwd=work)
    _git("-c", "user.email=t@e", "-c", "user.name=t", "commit", "-qm", "v1", cwd=work)
    bare = tmp_path / "skills.git"
    _git("clone", "-q", "--bare", str(work), str(bare))
    cache = tmp_path / "cache" / "skills"
    async with running_agent(
        tmp_path / "a1", fake.base_url, skills_dir=cache, skills_source=str(bare)
    ) as agent:
        assert agent.loop.skills.skills["lint"].instructions == "LINT-V1"
    assert (cache / ".git").is_dir()
    # A new commit upstream is not fetched while the cache exists...
    (work / "lint" / "SKILL.md").write_text("---\nname: lint\ndescription: Lint the code\n---\nLINT-V2\n")
    _git("-c", "user.email=t@e", "-c", "user.name=t", "commit", "-qam", "v2", cwd=work)
    _git("push", "-q", str(bare), "HEAD", cwd=work)
    async with running_agent(
        tmp_path / "a2", fake.base_url, skills_dir=cache, skills_source=str(bare)
    ) as agent:
        assert agent.loop.skills.skills["lint"].instructions == "LINT-V1"
    # ... and a missing cache is cloned again, with the new version.
    await asyncio.to_thread(subprocess.run, ["rm", "-rf", str(cache)], check=True)
    async with running_agent(
        tmp_path / "a3", fake.base_url, skills_dir=cache, skills_source=str(bare)
    ) as agent:
        assert agent.loop.skills.skills["lint"].instructions == "LINT-V2"


async def test_a_failed_clone_is_reported_and_the_agent_still_serves(tmp_path, fake):
    cache = tmp_path / "cache"
    async with running_agent(
        tmp_path / "agent", fake.base_url, skills_dir=cache, skills_source=str(tmp_path / "no-such-repo")
    ) as agent:
        assert not agent.loop.skills.skills
        assert "cloning" in agent.loop.skills.problems[0]
        assert not cache.exists()
