"""Fixtures: the vendor fakes and a real ``opsrail up``, one of each per module, reached over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.support import Opsrail, Vendors, serve_vendors


@pytest.fixture(scope="module")
def vendors() -> Iterator[Vendors]:
    yield from serve_vendors()


@pytest.fixture(autouse=True)
def no_faults_left(vendors: Vendors) -> Iterator[None]:
    yield
    for faults in vendors.faults.values():
        faults.clear()


@pytest.fixture
def people(opsrail: Opsrail) -> Iterator[dict[str, httpx.Client]]:
    """One HTTP client per person, each with their own token."""
    clients = {person: opsrail.client(person) for person in opsrail.tokens}
    try:
        yield clients
    finally:
        for client in clients.values():
            client.close()
