"""Tokens with expiry, rotation and per-token rate limits, on real stores."""

from __future__ import annotations

from datetime import timedelta

import pytest

from opsrail.api._problems import from_error
from opsrail.model import InvalidInput, NotFound, RateLimited, Unauthenticated
from opsrail.wiring import Container
from tests.support import FakeClock


def test_a_token_stops_working_when_it_expires(container: Container, clock: FakeClock) -> None:
    _, secret = container.tokens.create("operator", "short", clock.now() + timedelta(hours=1))
    assert container.tokens.authenticate(secret).name == "short"
    clock.advance(hours=1)
    with pytest.raises(Unauthenticated, match="expired"):
        container.tokens.authenticate(secret)
    with pytest.raises(InvalidInput, match="future"):
        container.tokens.create("operator", "past", clock.now() - timedelta(seconds=1))


def test_rotation_replaces_the_secret_and_keeps_name_role_and_limit(container: Container, clock: FakeClock) -> None:
    old, old_secret = container.tokens.create("service", "ci", rate_limit=5.0)
    new, new_secret = container.tokens.rotate(old.id)
    assert (new.name, new.role, new.rate_limit) == ("ci", "service", 5.0) and new.id != old.id
    assert container.tokens.authenticate(new_secret).id == new.id
    with pytest.raises(Unauthenticated, match="revoked"):
        container.tokens.authenticate(old_secret)
    with pytest.raises(NotFound):
        container.tokens.rotate(old.id)

    graced, graced_secret = container.tokens.rotate(new.id, grace=timedelta(minutes=10), actor="sam")
    assert container.tokens.authenticate(new_secret).id == new.id  # still works during the grace period
    assert container.tokens.authenticate(graced_secret).id == graced.id
    clock.advance(minutes=10)
    with pytest.raises(Unauthenticated, match="expired"):
        container.tokens.authenticate(new_secret)
    rotations = [e for e in container.audit.export() if e["action"] == "token.rotated"]
    assert [(e["subject"], e["actor"]) for e in rotations] == [(old.id, None), (new.id, "sam")]


def test_a_rate_limited_token_gets_429_with_retry_after_and_recovers(container: Container, clock: FakeClock) -> None:
    _, secret = container.tokens.create("operator", "limited", rate_limit=2.0)
    _, other = container.tokens.create("operator", "unlimited")
    for _ in range(4):  # a burst of twice the rate
        container.tokens.authenticate(secret)
    with pytest.raises(RateLimited) as refused:
        container.tokens.authenticate(secret)
    response = from_error(refused.value, "/v1/runs")
    assert response.status_code == 429 and response.headers["retry-after"] == "1"
    for _ in range(20):
        container.tokens.authenticate(other)  # other tokens are not affected
    clock.advance(seconds=1)
    container.tokens.authenticate(secret)
    container.tokens.authenticate(secret)
    with pytest.raises(RateLimited):
        container.tokens.authenticate(secret)
    with pytest.raises(InvalidInput, match="rate limit"):
        container.tokens.create("operator", "zero", rate_limit=0)
