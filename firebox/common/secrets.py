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

    def __init__(self, policy: SecretPolicy | None = None) -> None:
        self.policy = policy or SecretPolicy()
        self._values: set[str] = set()

    def add_value(self, value: str | None) -> None:
        if value and len(value) >= 4:
            self._values.add(value)

    def text(self, value: str) -> str:
        for secret in self._values:
            if secret in value:
                value = value.replace(secret, REDACTED)
        # The case-insensitive regex costs several times a plain search: run it only when needed
        # (every training-log line and log event passes here).
        if "bearer" not in value.lower():
            return value
        return _BEARER.sub(r"\1" + REDACTED, value)

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


# The process-wide redactor the logging setup uses; services register their secrets on it.
redactor = Redactor()
