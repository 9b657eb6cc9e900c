"""The fake model provider both replica test modules give their agents."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.fake_provider import FakeProvider


@pytest.fixture
async def fake() -> AsyncIterator[FakeProvider]:
    provider = await FakeProvider.start()
    try:
        yield provider
    finally:
        provider.release()
        await provider.stop()
