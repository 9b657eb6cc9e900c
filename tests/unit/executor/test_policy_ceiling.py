"""The operator's ceiling on policy overrides (executor_service/ceiling.py)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from executor_service.backend import Policy
from executor_service.ceiling import PolicyCeiling
from firebox.common.errors import PermissionDenied

DEFAULT = Policy()
MiB = 1024 * 1024


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"user": "0"}, "policy.user"),
        ({"user": "root:root"}, "policy.user"),
        ({"user": "1001:1001"}, "policy.user"),
        ({"capabilities": ("CAP_SYS_ADMIN",)}, "policy.capabilities"),
        ({"network": True}, "policy.network"),
        ({"read_only_root": False}, "policy.read_only_root"),
        ({"no_new_privileges": False}, "policy.no_new_privileges"),
        ({"memory_bytes": 0}, "policy.memory_bytes"),
        ({"memory_bytes": 4096 * MiB}, "policy.memory_bytes"),
        ({"pids_limit": 0}, "policy.pids_limit"),
        ({"cpu_millis": 2000}, "policy.cpu_millis"),
        ({"tmp_bytes": 1024 * MiB}, "policy.tmp_bytes"),
    ],
)
def test_by_default_nothing_above_the_default_policy(changes: dict[str, object], field: str) -> None:
    with pytest.raises(PermissionDenied, match=rf"^{field}: "):
        PolicyCeiling.of(DEFAULT).check(DEFAULT, replace(DEFAULT, **changes))


def test_tightening_is_always_allowed() -> None:
    tighter = replace(DEFAULT, memory_bytes=64 * MiB, pids_limit=32, cpu_millis=250, read_only=True)
    PolicyCeiling.of(DEFAULT).check(DEFAULT, tighter)
    PolicyCeiling.of(DEFAULT).check(DEFAULT, DEFAULT)


def test_the_operator_allows_named_loosenings_within_bounds() -> None:
    ceiling = PolicyCeiling.parse(
        "network=allow,root=allow,capabilities=NET_ADMIN+chown,memory_bytes=2147483648"
    )
    ceiling.check(
        DEFAULT,
        replace(DEFAULT, network=True, user="0:0", capabilities=("CAP_CHOWN",), memory_bytes=2048 * MiB),
    )
    with pytest.raises(
        PermissionDenied, match=r"^policy\.capabilities: CAP_SYS_ADMIN \(allowed: CAP_CHOWN, CAP_NET_ADMIN\)"
    ):
        ceiling.check(DEFAULT, replace(DEFAULT, capabilities=("CAP_SYS_ADMIN",)))
    with pytest.raises(PermissionDenied, match=r"^policy\.memory_bytes: 4294967296 is above"):
        ceiling.check(DEFAULT, replace(DEFAULT, memory_bytes=4096 * MiB))
    with pytest.raises(PermissionDenied, match=r"^policy\.user: running as another user"):
        ceiling.check(DEFAULT, replace(DEFAULT, user="1001"))


def test_open_allows_everything_and_zero_means_any_value() -> None:
    loosest = replace(
        DEFAULT,
        network=True,
        user="0",
        capabilities=("CAP_SYS_ADMIN", "CAP_MKNOD"),
        memory_bytes=0,
        pids_limit=0,
        cpu_millis=0,
        no_new_privileges=False,
        read_only_root=False,
        tmp_bytes=1024 * MiB,
    )
    PolicyCeiling.parse("open").check(DEFAULT, loosest)
    PolicyCeiling.parse("memory_bytes=0").check(DEFAULT, replace(DEFAULT, memory_bytes=0))


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("network=yes", "network: expected allow or deny"),
        ("pids_limit=-1", "pids_limit: expected a number"),
        ("bogus=1", "unknown key 'bogus'"),
        ("network", "expected key=value"),
    ],
)
def test_a_bad_setting_says_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        PolicyCeiling.parse(text)
