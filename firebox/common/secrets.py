"""What counts as a secret: variable-name patterns, and redaction of values before anything is logged."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from typing import Any

DEFAULT_DENY_PATTERNS: tuple[str, ...] = ("*KEY*", "*SECRET*", "*TOKEN*", "*PASSWORD*")
REDACTED = "[REDACTED]"

# Keys of logged fields that hold credentials. Narrower than the env patterns so that counts such
# as `input_tokens` stay readable.
_SECRET_KEY = re.compile(
    r"(?i)(authorization|api[_-]?key|secret|password|passwd|credential|(^|[_-])token$|^token|access[_-]?key)"
)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")

# Credentials recognised by their shape wherever they appear (a key typed into a command, a token
# in output), so that no log or training record carries a live one. Operators add their own with
# --redact-pattern. Each is anchored on a distinctive prefix, so ordinary text is not touched.
CREDENTIAL_PATTERNS: tuple[tuple[str, str], ...] = (
    # OpenAI (sk-..., sk-proj-...) and Anthropic (sk-ant-api03-...) API keys.
    ("provider-key", r"\bsk-[A-Za-z0-9_-]{20,}"),
    # AWS access key ids (long-term AKIA, temporary ASIA).
    ("aws-access-key", r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    # GitHub tokens: classic (ghp_, gho_, ghu_, ghs_, ghr_) and fine-grained.
    ("github-token", r"\bgh[pousr]_[A-Za-z0-9]{30,}|\bgithub_pat_[A-Za-z0-9_]{22,}"),
    # Slack tokens (bot, user, app, refresh...).
    ("slack-token", r"\bxox[abposre]-[A-Za-z0-9-]{10,}"),
    # Google API keys.
    ("google-api-key", r"\bAIza[0-9A-Za-z_-]{35}"),
    # JWTs (header.payload.signature, both JSON parts base64url of '{"').
    ("jwt", r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}"),
    # PEM private key blocks, whole, or to the end of the text when cut short; inside a JSON
    # line the newlines are the two characters backslash and n.
    (
        "private-key",
        r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----(?:[\s\S]*?-----END [A-Z0-9 ]*PRIVATE KEY-----|[A-Za-z0-9+/=\s\\]*)",
    ),
)


def parse_patterns(text: str) -> tuple[str, ...]:
    """Extra credential patterns from a setting: regular expressions separated by whitespace
    (write a space inside one as \\s). Raises ValueError naming one that does not compile."""
    patterns = tuple(text.split())
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {pattern[:64]!r} ({exc})") from None
    return patterns


def is_valid_env_name(name: str) -> bool:
    return bool(_ENV_NAME.match(name)) and len(name) <= 256


class SecretPolicy:
    """Decides which variable names are secrets; `allow` names are let through explicitly."""

    def __init__(self, deny_patterns: Iterable[str] = DEFAULT_DENY_PATTERNS, allow: Iterable[str] = ()):
        self.deny_patterns = tuple(p.upper() for p in deny_patterns)
        self.allow = frozenset(allow)

    def is_secret_name(self, name: str) -> bool:
        upper = name.upper()
        return any(fnmatch.fnmatchcase(upper, p) for p in self.deny_patterns)

    def refused(self, names: Iterable[str]) -> list[str]:
        """The names that are secrets and not explicitly allowed, sorted."""
        return sorted(n for n in names if n not in self.allow and self.is_secret_name(n))


class Redactor:
    """Replaces secret values in anything about to be logged.

    Values are scrubbed by key (a key that names a secret hides its whole value), by known secret
    values registered at start-up (tokens, API keys), and by shape (`Bearer …`).
    """

    def __init__(self, policy: SecretPolicy | None = None, patterns: Iterable[str] = ()) -> None:
        self.policy = policy or SecretPolicy()
        self._values: set[str] = set()
        self._extra_patterns: tuple[str, ...] = ()
        self._shapes = _compile_shapes(())
        self.add_patterns(patterns)

    def add_value(self, value: str | None) -> None:
        if value and len(value) >= 4:
            self._values.add(value)

    def add_patterns(self, patterns: Iterable[str]) -> None:
        """More credential shapes (regular expressions) to redact by value, besides the built-in
        CREDENTIAL_PATTERNS. A pattern that does not compile raises re.error."""
        extra = tuple(p for p in patterns if p and p not in self._extra_patterns)
        if extra:
            self._shapes = _compile_shapes((*self._extra_patterns, *extra))
            self._extra_patterns += extra

    def settings(self) -> dict[str, list[str]]:
        """Everything that decides what is redacted, as JSON-ready lists, so that another process
        (the training log's writer) can build the same redactor with `from_settings`."""
        return {
            "deny": list(self.policy.deny_patterns),
            "allow": sorted(self.policy.allow),
            "values": sorted(self._values),
            "patterns": list(self._extra_patterns),
        }

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> Redactor:
        made = cls(SecretPolicy(settings["deny"], settings["allow"]), settings.get("patterns", ()))
        for value in settings["values"]:
            made.add_value(value)
        return made

    def text(self, value: str) -> str:
        return self.text_counted(value)[0]

    def text_counted(self, value: str) -> tuple[str, int]:
        """`value` with every secret in it replaced, and how many were."""
        count = 0
        for secret in self._values:
            if secret in value:
                count += value.count(secret)
                value = value.replace(secret, REDACTED)
        # Every built-in shape starts with one of _MARKERS: a few substring searches (fast) spare
        # most text the regex (slow); operators' own patterns have no such marker.
        if self._extra_patterns or any(marker in value for marker in _MARKERS):
            value, shapes = self._shapes.subn(REDACTED, value)
            count += shapes
        # The case-insensitive regex costs several times a plain search: run it only when needed
        # (every training-log line and log event passes here).
        # (A token already replaced by shape reads "Bearer [REDACTED]" and does not match again.)
        if "bearer" in value.lower():
            value, bearers = _BEARER.subn(r"\1" + REDACTED, value)
            count += bearers
        return value, count

    def value(self, value: Any, key: str | None = None) -> Any:
        if key is not None and _SECRET_KEY.search(key):
            return REDACTED if value not in (None, "", {}, []) else value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {k: self.value(v, k if isinstance(k, str) else None) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.value(v) for v in value]
        return value

    def env(self, env: Mapping[str, str]) -> dict[str, str]:
        """A copy of an environment with the values of secret-named variables hidden."""
        return {
            k: (REDACTED if self.policy.is_secret_name(k) or _SECRET_KEY.search(k) else self.text(v))
            for k, v in env.items()
        }


_MARKERS = (
    "sk-",
    "AKIA",
    "ASIA",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "xox",
    "AIza",
    "eyJ",
    "PRIVATE KEY",
)


def _compile_shapes(extra: Iterable[str]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in (*(p for _, p in CREDENTIAL_PATTERNS), *extra)))


# The process-wide redactor the logging setup uses; services register their secrets on it.
redactor = Redactor()
