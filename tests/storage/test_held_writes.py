"""Applying held writes in one transaction: refusals undo only their own step, and the audit chain is linked
across a whole batch from the entry that committed last."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from opsrail.engine import Start, advance, initial_state
from opsrail.playbooks import load_playbook
from opsrail.storage import write_transaction
from opsrail.storage._audit import HeldAuditEntry
from opsrail.storage._held_writes import HeldWriteRefused, apply_held
from opsrail.storage._ledger import HeldLedgerChange
from opsrail.wiring import Container

AT = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def change(record_id: str, key: str) -> HeldLedgerChange:
    data: dict[str, Any] = {"id": record_id, "account_id": "acct-1", "name": record_id}
    return HeldLedgerChange("projects", record_id, "acct-1", data, None, (), AT, (key, "fp", data))


def entry(action: str, subject: str) -> HeldAuditEntry:
    return HeldAuditEntry(AT, None, action, subject, {"n": 1})


def test_a_refused_step_is_undone_alone_and_the_chain_links_the_rest(container: Container) -> None:
    container.ledger.create("projects", {"id": "prj-taken", "account_id": "acct-1", "name": "taken"})
    container.audit.record("ada", "test.before", None, {})
    held: dict[tuple[str, str], list[object]] = {
        ("run-1", "a"): [change("prj-a", "run-1:a"), entry("ledger.project.created", "prj-a")],
        ("run-1", "b"): [change("prj-taken", "run-1:b"), entry("ledger.project.created", "prj-taken")],
        ("run-2", "c"): [entry("connector.called", "jira.create_issue")],
    }
    with write_transaction(container.engine) as conn:
        refused = apply_held(conn, held, isolate=True)
    assert refused == {("run-1", "b")}
    with container.engine.connect() as conn:
        keys = {row[0] for row in conn.execute(sa.text("SELECT key FROM ledger_requests"))}
    assert keys == {"run-1:a"}
    trail = [(e["action"], e["subject"]) for e in container.audit.export()]
    assert trail[-3:] == [
        ("test.before", None),
        ("ledger.project.created", "prj-a"),
        ("connector.called", "jira.create_issue"),
    ]
    report = container.audit.verify()
    assert report.ok and report.checked == len(trail)


def test_without_isolation_the_first_refusal_rolls_back_everything(container: Container) -> None:
    container.ledger.create("projects", {"id": "prj-taken", "account_id": "acct-1", "name": "taken"})
    before = len(list(container.audit.export()))
    held: dict[tuple[str, str], list[object]] = {
        ("run-1", "a"): [change("prj-a", "run-1:a"), entry("x", "a")],
        ("run-1", "b"): [change("prj-taken", "run-1:b")],
    }
    with pytest.raises(HeldWriteRefused), write_transaction(container.engine) as conn:
        apply_held(conn, held, isolate=False)
    assert [p["id"] for p in container.ledger.list("projects", "acct-1")] == ["prj-taken"]
    assert len(list(container.audit.export())) == before


def test_runs_started_by_events_are_stored_once_per_trigger_with_the_cursor(container: Container) -> None:
    playbook = load_playbook("id: triggered\nversion: 1\nsteps:\n  - id: only\n    action: core.set\n", "t.yaml")
    store = container.runner.store
    assert isinstance(container.automation.store, type(store))
    container.automation.store.publish(playbook, "id: triggered", "t.yaml", None, AT)

    def started(run_id: str, event_id: str) -> tuple[Any, Any, tuple[str, str]]:
        run = initial_state(playbook, run_id, {"event": event_id}, AT)
        return run, advance(playbook, run, Start(), AT), ("monitoring/x", event_id)

    first = store.start_triggered([started("run-1", "e1"), started("run-2", "e2")], ("engine", 7))
    again = store.start_triggered([started("run-3", "e2"), started("run-4", "e3")], ("engine", 9))
    assert first == {"run-1", "run-2"} and again == {"run-4"}
    assert store.events_after("engine", 10)[0] == 9
    assert sorted(r["id"] for r in container.automation.runs(playbook_id="triggered")) == ["run-1", "run-2", "run-4"]
