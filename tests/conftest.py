"""Suite-wide: in CI nothing skips; and a real PostgreSQL server, started once per test session
(only when a test asks for it).

A test that skips in CI proves nothing and hides a missing install step (scripts/test-env.sh installs
and starts everything the suite needs), so under `CI=true` — or `FIREBOX_FORBID_SKIPS=1` locally — a
skip is reported as a failure naming its reason. Expected failures (xfail) are not skips and are
left alone.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support.postgres import PostgresServer

FORBID_SKIPS = os.environ.get("CI", "").lower() == "true" or os.environ.get("FIREBOX_FORBID_SKIPS") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    outcome = yield
    report = outcome.get_result()
    if not FORBID_SKIPS or not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = f"skipped in CI, where every test must run (a missing install step?): {reason}"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer.start()
    try:
        yield server
    finally:
        server.stop()
