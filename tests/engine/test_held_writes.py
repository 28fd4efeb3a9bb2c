"""A step's own writes (ledger changes, decision records, audit entries) commit with the step's result.

The runner holds what an operation writes to Opsrail's database while a step runs and applies it in the
transaction that saves the batch (``opsrail.engine.hold``). These tests pin what that must keep: the writes are
invisible until then and land with the result or not at all, the audit chain still verifies, a write refused at
commit has the step executed again so the ledger's Idempotency-Key rules answer exactly as without holding, and
nothing is held outside a step.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from opsrail.connectors.ledger import CreditMemo
from opsrail.engine import CallContext, OperationFailed, holds_writes
from opsrail.storage import SqlRunStore
from opsrail.wiring import Container
from tests.support import FakeClock, drain, publish

CREDIT = """
id: credit-on-sev1
version: 1
steps:
  - id: credit
    action: ledger.create_credit_memo
    with: {account_id: "${ run.input.account_id }", amount: 120.0, currency: EUR, reason: "Sev1 ${ run.input.id }"}
  - id: project
    action: ledger.create_project
    with: {account_id: "${ run.input.account_id }", name: "Follow-up ${ run.input.id }"}
  - id: done
    needs: [credit, project]
    action: core.set
    with: {credit: "${ steps.credit.output.id }"}
"""


def count(container: Container, table: str, where: str = "1 = 1") -> int:
    with container.engine.connect() as conn:
        return int(conn.execute(sa.text(f"SELECT count(*) FROM {table} WHERE {where}")).scalar() or 0)


def actions(container: Container) -> list[str]:
    return [entry["action"] for entry in container.audit.export()]


def test_a_steps_ledger_writes_and_audit_entries_land_with_its_result(container: Container, tmp_path: Path) -> None:
    publish(container, tmp_path, CREDIT)
    seen: list[tuple[bool, int, int]] = []

    async def peek(params: dict[str, Any], call: CallContext) -> Any:
        # Inside a step: writes are held, so the ledger change of a step in the same batch is not visible yet.
        created = container.ledger.create("projects", {"account_id": "acct-9", "name": "peek"}, idempotency_key="p")
        seen.append((holds_writes(), len(container.ledger.list("projects", "acct-9")), count(container, "audit_log")))
        return created

    container.runner.operations.register("test.peek", peek)
    publish(
        container,
        tmp_path,
        CREDIT.replace("version: 1", "version: 2").replace("action: core.set", "action: test.peek"),
    )
    audited_before = count(container, "audit_log")
    run_id = container.automation.start("credit-on-sev1", {"id": "INC-1", "account_id": "acct-1"})
    drain(container)

    run = container.automation.show(run_id)
    assert run["status"] == "succeeded"
    assert seen == [(True, 0, audited_before + 1 + 4)]  # run.started, then credit and project: change + call each
    credit = next(s for s in run["steps"] if s["id"] == "credit")["output"]
    assert container.ledger.get("credit-memos", credit["id"]) == credit
    assert len(container.ledger.list("projects", "acct-9")) == 1
    assert count(container, "ledger_requests", f"key = '{run_id}:credit'") == 1
    report = container.audit.verify()
    assert report.ok and report.checked == count(container, "audit_log")
    assert actions(container).count("connector.called") == 2
    assert actions(container).count("ledger.credit_memo.created") == 1
    assert actions(container).count("ledger.project.created") == 2


def test_a_batch_whose_save_fails_leaves_no_ledger_change_and_no_audit_entry(
    container: Container, tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish(container, tmp_path, CREDIT)
    run_id = container.automation.start("credit-on-sev1", {"id": "INC-2", "account_id": "acct-2"})
    audited = count(container, "audit_log")

    def broken(self: SqlRunStore, conn: sa.Connection, changes: Any) -> None:
        raise sa.exc.OperationalError("UPDATE runs", {}, Exception("disk I/O error"))

    monkeypatch.setattr(SqlRunStore, "_save_all", broken)
    with pytest.raises(sa.exc.OperationalError):
        asyncio.run(container.runner.execute_ready())
    assert count(container, "ledger_records") == 0
    assert count(container, "ledger_requests") == 0
    assert count(container, "audit_log") == audited
    assert container.audit.verify().ok

    # Once the database answers again, the steps are taken again when their lease expires; all lands once.
    monkeypatch.undo()
    clock.advance(seconds=60)
    drain(container)
    assert container.automation.show(run_id)["status"] == "succeeded"
    assert count(container, "ledger_records") == 2 and count(container, "ledger_requests") == 2
    assert container.audit.verify().ok


def test_a_key_used_meanwhile_has_the_step_replay_the_first_answer(container: Container, tmp_path: Path) -> None:
    publish(container, tmp_path, CREDIT)
    run_id = container.automation.start("credit-on-sev1", {"id": "INC-3", "account_id": "acct-3"})
    # The same request under the step's key lands first (a crashed attempt, or anyone using the key).
    sent = CreditMemo(account_id="acct-3", amount=Decimal("120.0"), currency="EUR", reason="Sev1 INC-3")
    body = {**sent.model_dump(mode="json", exclude_none=True), "status": "provisional"}
    first = container.ledger.create("credit-memos", body, actor="engine", idempotency_key=f"{run_id}:credit")
    drain(container)

    run = container.automation.show(run_id)
    assert run["status"] == "succeeded"
    assert next(s for s in run["steps"] if s["id"] == "credit")["output"] == first
    assert len(container.ledger.list("credit-memos", "acct-3")) == 1
    assert container.audit.verify().ok
    assert actions(container).count("ledger.credit_memo.created") == 1


def test_a_key_used_meanwhile_for_another_request_fails_the_step(container: Container, tmp_path: Path) -> None:
    publish(container, tmp_path, CREDIT)
    run_id = container.automation.start("credit-on-sev1", {"id": "INC-4", "account_id": "acct-4"})
    other = {"account_id": "acct-4", "amount": "1.0", "currency": "EUR", "reason": "other", "status": "provisional"}
    container.ledger.create("credit-memos", other, idempotency_key=f"{run_id}:credit")
    drain(container)

    run = container.automation.show(run_id)
    credit = next(s for s in run["steps"] if s["id"] == "credit")
    assert run["status"] == "failed" and credit["status"] == "failed"
    assert "idempotency key was used for a different request" in credit["error"]
    assert len(container.ledger.list("credit-memos", "acct-4")) == 1
    assert container.audit.verify().ok


def test_two_steps_of_a_batch_creating_one_record_the_second_meets_the_conflict(
    container: Container, tmp_path: Path
) -> None:
    publish(
        container,
        tmp_path,
        """
id: same-id
version: 1
steps:
  - id: a
    action: ledger.create_project
    with: {account_id: acct-5, name: first}
  - id: b
    action: ledger.create_project
    with: {account_id: acct-5, name: second}
""",
    )

    async def with_fixed_id(params: dict[str, Any], call: CallContext) -> Any:
        return container.ledger.create("projects", {**params, "id": "prj-fixed"}, idempotency_key=call.idempotency_key)

    container.runner.operations.register("ledger.create_project", with_fixed_id)
    run_id = container.automation.start("same-id", {})
    drain(container)

    steps = {s["id"]: s for s in container.automation.show(run_id)["steps"]}
    outcomes = sorted(s["status"] for s in steps.values())
    assert outcomes == ["failed", "succeeded"]
    failed = next(s for s in steps.values() if s["status"] == "failed")
    assert "exists already" in (failed["error"] or "")
    assert count(container, "ledger_records") == 1 and count(container, "ledger_requests") == 1
    assert container.audit.verify().ok


def test_nothing_is_held_outside_a_step(container: Container) -> None:
    assert not holds_writes()
    created = container.ledger.create("projects", {"account_id": "acct-6", "name": "direct"}, idempotency_key="k-6")
    assert container.ledger.get("projects", created["id"]) == created
    entry = container.audit.record("ada", "test.appended", "s", {"n": 1})
    assert entry.seq == count(container, "audit_log")


def test_the_first_attempt_is_the_first_call_and_a_retry_is_not(
    container: Container, tmp_path: Path, clock: FakeClock
) -> None:
    publish(
        container,
        tmp_path,
        """
id: flaky
version: 1
steps:
  - id: call
    action: test.flaky
    retry: {attempts: 2, initial: PT1S}
""",
    )
    calls: list[tuple[int, bool]] = []

    async def flaky(params: dict[str, Any], call: CallContext) -> Any:
        calls.append((call.attempt, call.first_call))
        if call.attempt == 1:
            raise OperationFailed("try again", retryable=True)
        return {}

    container.runner.operations.register("test.flaky", flaky)
    container.automation.start("flaky", {})
    drain(container)
    clock.advance(seconds=5)
    drain(container)
    assert calls == [(1, True), (2, False)]
