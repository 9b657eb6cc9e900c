"""JSON with comments and trailing commas (JSONC), as editors write devcontainer.json: both are
removed, outside strings, before the JSON parser sees the text. Used by the executor (reading a
devcontainer.json) and the client (finding its build context)."""

from __future__ import annotations

from collections.abc import Callable


def strip_jsonc(text: str) -> str:
    """`text` without // and /* */ comments and without trailing commas, strings untouched."""
    return _drop_trailing_commas(_drop_comments(text))


def _string_end(text: str, i: int) -> int:
    """The index after the string starting at `i` (a '"')."""
    j = i + 1
    while j < len(text) and text[j] != '"':
        j += 2 if text[j] == "\\" else 1
    return j + 1


def _outside_strings(text: str, step: Callable[[str, int, list[str]], int]) -> str:
    """`text` with strings copied as they are and everything else handed to `step`, which
    appends what it keeps to `out` and returns the index to go on from."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        if text[i] == '"':
            end = _string_end(text, i)
            out.append(text[i:end])
            i = end
        else:
            i = step(text, i, out)
    return "".join(out)


def _comment(text: str, i: int, out: list[str]) -> int:
    if text.startswith("//", i):
        end = text.find("\n", i)
        return len(text) if end < 0 else end
    if text.startswith("/*", i):
        end = text.find("*/", i + 2)
        return len(text) if end < 0 else end + 2
    out.append(text[i])
    return i + 1


def _trailing_comma(text: str, i: int, out: list[str]) -> int:
    if text[i] == ",":
        j = i + 1
        while j < len(text) and text[j] in " \t\r\n":
            j += 1
        if j < len(text) and text[j] in "}]":
            return i + 1
    out.append(text[i])
    return i + 1


def _drop_comments(text: str) -> str:
    return _outside_strings(text, _comment)


def _drop_trailing_commas(text: str) -> str:
    return _outside_strings(text, _trailing_comma)
