"""The operator's ceiling on what a CreateWorkspace request may ask of the isolation policy.

Any token holder may create workspaces; without a ceiling they could ask for root, every
capability, the network and no limits at all. The ceiling says which loosenings a request may
ask for and how far; by default (`PolicyCeiling.of(default_policy)`) nothing above the default
policy. Tightening is always allowed: less memory, fewer pids, read-only, no network. A request
above the ceiling is PERMISSION_DENIED naming the field.

The setting (`--policy-ceiling` / FIREBOX_POLICY_CEILING) is a comma-separated list of
`key=value`: network, root, user, writable_root, new_privileges = allow|deny; capabilities =
NAMES joined by '+' (or `all`); memory_bytes, pids_limit, cpu_millis, tmp_bytes, disk_bytes = N (the most a
request may ask; 0 = any value, unlimited included). `open` alone allows everything (trusted
single-user setups).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from executor_service.backend import Policy
from firebox.common import errors

_SWITCHES = ("network", "root", "user", "writable_root", "new_privileges")
_LIMITS = ("memory_bytes", "pids_limit", "cpu_millis", "tmp_bytes", "disk_bytes")
ALL_CAPABILITIES = "all"


@dataclass(frozen=True)
class PolicyCeiling:
    """What a request may loosen (see the module docstring). Limits: 0 = no ceiling."""

    network: bool = False
    root: bool = False
    # May a request run as another (non-root) user than the default.
    user: bool = False
    writable_root: bool = False
    new_privileges: bool = False
    # Capabilities a request may add, CAP_ names; ALL_CAPABILITIES in it allows any.
    capabilities: frozenset[str] = frozenset()
    memory_bytes: int = 0
    pids_limit: int = 0
    cpu_millis: int = 0
    tmp_bytes: int = 0
    disk_bytes: int = 0

    @classmethod
    def of(cls, default: Policy) -> PolicyCeiling:
        """Nothing above `default`."""
        return cls(
            memory_bytes=default.memory_bytes,
            pids_limit=default.pids_limit,
            cpu_millis=default.cpu_millis,
            tmp_bytes=default.tmp_bytes,
            disk_bytes=default.disk_bytes,
            capabilities=frozenset(default.capabilities),
        )

    @classmethod
    def open(cls) -> PolicyCeiling:
        return cls(
            network=True,
            root=True,
            user=True,
            writable_root=True,
            new_privileges=True,
            capabilities=frozenset({ALL_CAPABILITIES}),
        )

    @classmethod
    def parse(cls, text: str, default: Policy | None = None) -> PolicyCeiling:
        """The setting's text over the default ceiling; ValueError says what is wrong."""
        text = text.strip()
        if text == "open":
            return cls.open()
        ceiling = cls.of(default or Policy())
        changes: dict[str, object] = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            key, sep, value = item.partition("=")
            key, value = key.strip(), value.strip()
            if not sep:
                raise ValueError(f"expected key=value, got {item[:64]!r}")
            if key in _SWITCHES:
                if value not in ("allow", "deny"):
                    raise ValueError(f"{key}: expected allow or deny, got {value[:64]!r}")
                changes[key] = value == "allow"
            elif key in _LIMITS:
                if not value.isdigit():
                    raise ValueError(f"{key}: expected a number (0 = any), got {value[:64]!r}")
                changes[key] = int(value)
            elif key == "capabilities":
                names = {name.strip().upper() for name in value.split("+") if name.strip()}
                if ALL_CAPABILITIES.upper() in names:
                    changes[key] = frozenset({ALL_CAPABILITIES})
                else:
                    changes[key] = frozenset(n if n.startswith("CAP_") else f"CAP_{n}" for n in names)
            else:
                known = ", ".join((*_SWITCHES, "capabilities", *_LIMITS))
                raise ValueError(f"unknown key {key[:64]!r}; known: {known}")
        return replace(ceiling, **changes)  # type: ignore[arg-type]

    def describe(self) -> str:
        """The ceiling in the setting's own syntax, for the start-up log."""
        parts = [f"{name}={'allow' if getattr(self, name) else 'deny'}" for name in _SWITCHES]
        parts.append("capabilities=" + ("+".join(sorted(self.capabilities)) or "none"))
        parts += [f"{name}={getattr(self, name)}" for name in _LIMITS]
        return ",".join(parts)

    def check(self, default: Policy, policy: Policy) -> None:
        """PermissionDenied naming the first field of the decided `policy` above the ceiling."""
        if policy.network and not default.network and not self.network:
            _deny("policy.network", "turning the network on")
        if policy.user != default.user:
            if _is_root(policy.user) and not self.root:
                _deny("policy.user", "running as root")
            if not _is_root(policy.user) and not self.user:
                _deny("policy.user", f"running as another user than {default.user}")
        if not policy.read_only_root and default.read_only_root and not self.writable_root:
            _deny("policy.read_only_root", "a writable root filesystem")
        if not policy.no_new_privileges and default.no_new_privileges and not self.new_privileges:
            _deny("policy.no_new_privileges", "turning no_new_privileges off")
        if ALL_CAPABILITIES not in self.capabilities:
            extra = sorted(set(policy.capabilities) - self.capabilities - set(default.capabilities))
            if extra:
                allowed = ", ".join(sorted(self.capabilities)) or "none"
                _deny("policy.capabilities", f"{', '.join(extra)} (allowed: {allowed})")
        for name in _LIMITS:
            most = getattr(self, name)
            value = getattr(policy, name)
            # Keeping the base's value is no loosening (a fork keeps its snapshot's: bwrap records
            # disk_bytes 0, not enforced there).
            if most and (value == 0 or value > most) and value != getattr(default, name):
                asked = "no limit" if value == 0 else str(value)
                raise errors.PermissionDenied(
                    f"policy.{name}: {asked} is above this executor's ceiling of {most}; "
                    "the operator can raise it with --policy-ceiling"
                )


def _is_root(user: str) -> bool:
    uid = user.partition(":")[0]
    return uid in ("0", "root")


def _deny(field: str, what: str) -> None:
    raise errors.PermissionDenied(
        f"{field}: {what} is above this executor's policy ceiling; the operator can allow it with "
        "--policy-ceiling"
    )
