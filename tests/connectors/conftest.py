"""Fixtures for connector tests: a fake vendor served over real HTTP, and a sleep that records instead of waiting."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest
from fastapi import FastAPI

from tests.connectors.test_email import smtp_server  # noqa: F401 - a fixture shared with other connector tests
from tests.knowledge.conftest import serve_in_thread


class RecordedSleep:
    """Injected as a transport's ``sleep``: records each wait (to check backoff and ``Retry-After``) and returns."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def recorded_sleep() -> RecordedSleep:
    return RecordedSleep()


@pytest.fixture
def serve() -> Iterator[Callable[[FastAPI], str]]:
    """``serve(app)`` starts a fake on a free port and returns its base URL; all stop when the test ends."""
    with ExitStack() as stack:
        yield lambda app: stack.enter_context(serve_in_thread(app))
