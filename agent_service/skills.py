"""Skills: reusable instructions the model can bring into its context.

A skill is a folder holding `SKILL.md`: front matter between `---` lines with `name:` and
`description:`, then the instructions. The system prompt lists every skill's name and
description; mentioning `$name` in a message, or the model calling `load_skill`, brings the
instructions in. Skills that cannot be read, lack front matter or a name or description, or
repeat another skill's name are reported at start-up and skipped.

`--skills-source` names a git repository cloned into the skills directory once, when the
directory is missing; while it exists it is never fetched again (update it by deleting it).
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from pathlib import Path

from firebox.common.logging import get_logger

log = get_logger("firebox.agent.skills")

SKILL_FILE = "SKILL.md"
LOAD_SKILL_TOOL_NAME = "load_skill"
# Bounds: a skill's instructions, and the time a clone may take.
MAX_SKILL_BYTES = 256 * 1024
CLONE_TIMEOUT_SECONDS = 120.0
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_MENTION = re.compile(r"\$([A-Za-z0-9][A-Za-z0-9_.-]{0,63})")


@dataclass(frozen=True)
class Skill:
    name: str
    description: str
    instructions: str
    path: Path


@dataclass
class SkillLibrary:
    """The skills loaded at start-up, and the problems found while loading them."""

    skills: dict[str, Skill] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def get(self, name: str) -> Skill | None:
        return self.skills.get(name)

    def mentioned(self, text: str) -> list[Skill]:
        """Skills named as `$name` in the text, in order of first mention."""
        seen: dict[str, Skill] = {}
        for match in _MENTION.finditer(text):
            name = match.group(1).rstrip(".")
            skill = self.skills.get(name)
            if skill is not None and name not in seen:
                seen[name] = skill
        return list(seen.values())

    def prompt_section(self) -> str:
        """The part of the system prompt that lists the skills ("" when there are none)."""
        if not self.skills:
            return ""
        lines = [
            "Skills you can use: call the load_skill tool with a skill's name to read its full "
            "instructions before following it (the user may also mention one as $name).",
        ]
        lines.extend(
            f"- {s.name}: {s.description}" for s in sorted(self.skills.values(), key=lambda s: s.name)
        )
        return "\n".join(lines)

    def tool(self) -> dict[str, object]:
        return {
            "type": "function",
            "function": {
                "name": LOAD_SKILL_TOOL_NAME,
                "description": "Load a skill's full instructions into the conversation.",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "name": {
                            "type": "string",
                            "enum": sorted(self.skills),
                            "description": "the skill's name",
                        }
                    },
                    "required": ["name"],
                },
            },
        }


def parse_skill(text: str, path: Path) -> Skill:
    """A skill from its SKILL.md text; ValueError saying what is wrong."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        raise ValueError("no front matter (the file must start with a '---' line)")
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
    except StopIteration:
        raise ValueError("front matter is not closed with a '---' line") from None
    fields: dict[str, str] = {}
    for line in lines[1:end]:
        key, sep, value = line.partition(":")
        if sep and key.strip():
            fields[key.strip().lower()] = value.strip().strip("'\"")
    name, description = fields.get("name", ""), fields.get("description", "")
    if not name:
        raise ValueError("front matter has no name")
    if not _NAME.match(name):
        raise ValueError(f"name {name!r} must be letters, digits, '.', '_' or '-' (at most 64)")
    if not description:
        raise ValueError("front matter has no description")
    instructions = "\n".join(lines[end + 1 :]).strip()
    return Skill(name, description, instructions, path)


def load_skills(directory: Path) -> SkillLibrary:
    """Every good skill under `directory` (one level of folders), problems reported and skipped."""
    library = SkillLibrary()
    if not directory.is_dir():
        library.problems.append(f"{directory}: not a directory; no skills loaded")
        return library
    for folder in sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith(".")):
        path = folder / SKILL_FILE
        if not path.is_file():
            continue
        try:
            if path.stat().st_size > MAX_SKILL_BYTES:
                raise ValueError(f"larger than {MAX_SKILL_BYTES} bytes")
            skill = parse_skill(path.read_text(encoding="utf-8"), path)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            library.problems.append(f"{path}: {exc}; skipped")
            continue
        if skill.name in library.skills:
            first = library.skills[skill.name].path
            library.problems.append(f"{path}: name {skill.name!r} is already used by {first}; skipped")
            continue
        library.skills[skill.name] = skill
    return library


async def ensure_skills(directory: Path | None, source: str) -> SkillLibrary:
    """Clone `source` into `directory` if the directory is missing, then load the skills. Problems
    (a failed clone, bad skills) are logged and reported in the library, never raised."""
    if directory is None:
        return SkillLibrary()
    if source and not await asyncio.to_thread(directory.exists):
        await asyncio.to_thread(directory.parent.mkdir, parents=True, exist_ok=True)
        partial = directory.with_name(directory.name + ".cloning")
        await asyncio.to_thread(_remove_tree, partial)
        process = await asyncio.create_subprocess_exec(
            "git",
            "clone",
            "--depth",
            "1",
            "--quiet",
            "--",
            source,
            str(partial),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={"GIT_TERMINAL_PROMPT": "0", "PATH": "/usr/local/bin:/usr/bin:/bin"},
        )
        try:
            async with asyncio.timeout(CLONE_TIMEOUT_SECONDS):
                _out, err = await process.communicate()
            failed = process.returncode != 0
        except TimeoutError:
            process.kill()
            await process.wait()
            err, failed = b"timed out", True
        if failed:
            await asyncio.to_thread(_remove_tree, partial)
            library = SkillLibrary(
                problems=[f"cloning {source} failed: {err.decode(errors='replace')[-500:]}"]
            )
            _report(library, directory)
            return library
        # Cloned aside and renamed, so a failed clone never looks like a present directory.
        partial.rename(directory)
        log.info("skills_cloned", source=source, directory=str(directory))
    library = await asyncio.to_thread(load_skills, directory)
    _report(library, directory)
    return library


def _report(library: SkillLibrary, directory: Path) -> None:
    for problem in library.problems:
        log.warning("skill_skipped", problem=problem)
    log.info(
        "skills_loaded", directory=str(directory), count=len(library.skills), names=sorted(library.skills)
    )


def _remove_tree(path: Path) -> None:
    import shutil

    if path.exists():
        shutil.rmtree(path, ignore_errors=True)
