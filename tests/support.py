"""Test doubles for the injected ports, and helpers shared by the suites."""

from __future__ import annotations

import asyncio
import csv
import gzip
import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any


class FakeClock:
    """A clock tests move by hand; it never reads the wall clock."""

    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.current

    def advance(self, **kwargs: float) -> datetime:
        self.current += timedelta(**kwargs)
        return self.current


class SequentialIds:
    def __init__(self) -> None:
        self._counter = itertools.count(1)

    def new(self, prefix: str) -> str:
        return f"{prefix}_{next(self._counter):012d}"


def cloudevent(
    id: str = "evt-1",
    source: str = "test/suite",
    type: str = "com.example.thing.happened",
    data: Any = None,
    **extra: Any,
) -> dict[str, Any]:
    event: dict[str, Any] = {"specversion": "1.0", "id": id, "source": source, "type": type}
    if data is not None:
        event["data"] = data
    event.update(extra)
    return event


def incident_event(id: str = "evt-inc-1", severity: int = 1, **data: Any) -> dict[str, Any]:
    body = {"id": "acme:INC-1", "title": "Checkout down for EU tenants", "severity": severity, **data}
    return cloudevent(id=id, source="monitoring/acme", type="com.opsrail.incident.opened", data=body)


# The people the tests act as, with their roles in the user directory.
STAFF: dict[str, list[str]] = {
    "fiona": ["finance_controller"],
    "carol": ["finance_controller"],
    "ann": ["approver"],
    "bob": ["approver"],
    "arun": ["approver"],
    "olive": ["operator"],
    "oscar": ["operator"],
    "lena": ["legal"],
    "aude": ["auditor"],
}


def add_staff(container: Any) -> None:
    """Straight into the directory's store: the audit trail of a test starts with what the test itself does."""
    now = container.directory.clock.now()
    for name, roles in STAFF.items():
        container.directory.store.put_user(name, roles, "tests", now)


def publish(container: Any, tmp_path: Path, text: str, name: str = "pb.yaml") -> None:
    """Publish a playbook given as text, as the person ``tester``."""
    path = tmp_path / name
    path.write_text(text)
    container.automation.publish(path, "tester")


def drain(container: Any, ticks: int = 50) -> None:
    """Tick the container's engine until a tick finds nothing to do (at most ``ticks`` ticks)."""

    async def go() -> None:
        for _ in range(ticks):
            if not await container.runner.tick():
                return

    asyncio.run(go())


def every_audit_entry(client: Any, page: int = 1000) -> list[dict[str, Any]]:
    """The whole audit log over HTTP, oldest first, page after page (``GET /v1/audit?after=``): a server shared by
    many tests holds more entries than one page."""
    entries: list[dict[str, Any]] = []
    after = 0
    while True:
        answer = client.get("/v1/audit", params={"after": after, "limit": page})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        entries += body["items"]
        if body["next_after"] is None:
            return entries
        after = body["next_after"]


TICKETS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "it_tickets" / "tickets_train.csv.gz"


def ticket_sample(tmp_path: Path, rows: int = 1200) -> Path:
    """The first ``rows`` tickets of the shared ticket file, as a plain CSV (Document, Topic_group)."""
    with gzip.open(TICKETS, "rt", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        sample = [row for _, row in zip(range(rows), reader, strict=False)]
    path = tmp_path / "tickets.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["Document", "Topic_group"])
        writer.writeheader()
        writer.writerows(sample)
    return path
