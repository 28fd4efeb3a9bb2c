"""Approval rules on real stores: thresholds in CEL, separation of duties, four-eyes with a required role,
delegation with an end date, escalation of unanswered approvals, and concurrent approvals."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from opsrail.model import Conflict, Forbidden, InvalidInput
from opsrail.wiring import Container
from tests.support import FakeClock

CREDIT = """
id: service-credit
version: 1
steps:
  - id: approve
    approval:
      roles: [finance_controller]
      rules:
        - when: "run.input.amount <= 500"
          tier: autonomous
        - when: "run.input.amount <= 5000"
          roles: [finance_controller]
        - roles: [finance_controller, approver]
          count: 2
          require: [finance_controller]
      escalate_after: PT4H
      escalate_to: [finance_controller]
  - id: book
    needs: [approve]
    action: core.set
    with: {booked: true}
"""

ESCALATING = """
id: escalating
version: 1
steps:
  - id: approve
    approval: {roles: [approver], escalate_after: PT2H, escalate_to: [finance_controller]}
"""


def _drain(container: Container) -> None:
    for _ in range(10):
        asyncio.run(container.runner.tick())


def _publish(container: Container, tmp_path: Path, text: str) -> None:
    path = tmp_path / "pb.yaml"
    path.write_text(text)
    container.automation.publish(path, "ada")


def _credit(container: Container, amount: int, by: str = "olive") -> tuple[str, dict[str, Any] | None]:
    run_id = container.automation.start("service-credit", {"amount": amount}, actor=by)
    _drain(container)
    tasks = [t for t in container.automation.tasks() if t["run_id"] == run_id]
    return run_id, (tasks[0] if tasks else None)


def _status(container: Container, run_id: str) -> str:
    return str(container.automation.show(run_id)["status"])


def test_a_small_credit_is_autonomous(container: Container, tmp_path: Path) -> None:
    _publish(container, tmp_path, CREDIT)
    run_id, task = _credit(container, 400)
    assert task is None
    assert _status(container, run_id) == "succeeded"
    approve = {s["id"]: s for s in container.automation.show(run_id)["steps"]}["approve"]
    assert approve["output"] == {"approved": True, "tier": "autonomous", "rule": 0}


def test_a_finance_controller_approves_what_an_operator_requested(container: Container, tmp_path: Path) -> None:
    _publish(container, tmp_path, CREDIT)
    run_id, task = _credit(container, 3000, by="olive")
    assert task is not None and task["roles"] == ["finance_controller"] and task["required"] == 1
    assert task["requested_by"] == "olive"
    with pytest.raises(Forbidden, match=r"olive \(operator\) may not task\.decide"):
        container.automation.decide(task["id"], approve=True, by="olive")
    with pytest.raises(Forbidden, match=r"task\.decide"):
        container.automation.decide(task["id"], approve=True, by="ann")  # an approver, not a finance controller
    container.automation.decide(task["id"], approve=True, by="fiona")
    _drain(container)
    assert _status(container, run_id) == "succeeded"


def test_the_requester_cannot_approve_even_with_the_role(container: Container, tmp_path: Path) -> None:
    _publish(container, tmp_path, CREDIT)
    run_id, task = _credit(container, 3000, by="carol")  # carol is a finance controller
    assert task is not None
    with pytest.raises(Forbidden) as refused:
        container.automation.decide(task["id"], approve=True, by="carol")
    assert refused.value.extra["policies"] == ["separation-of-duties"]
    container.automation.decide(task["id"], approve=True, by="fiona")
    _drain(container)
    assert _status(container, run_id) == "succeeded"


def test_a_large_credit_needs_two_approvers_one_a_finance_controller(container: Container, tmp_path: Path) -> None:
    _publish(container, tmp_path, CREDIT)
    run_id, task = _credit(container, 9000)
    assert task is not None and task["required"] == 2 and task["require"] == ["finance_controller"]
    container.automation.decide(task["id"], approve=True, by="ann")
    with pytest.raises(Conflict, match="counts once"):
        container.automation.decide(task["id"], approve=True, by="ann")
    with pytest.raises(Conflict, match="finance_controller without an approver"):
        container.automation.decide(task["id"], approve=True, by="bob")
    assert _status(container, run_id) == "running"
    container.automation.decide(task["id"], approve=True, by="fiona")
    _drain(container)
    assert _status(container, run_id) == "succeeded"
    decided = container.automation.task(task["id"])["decisions"]
    assert [(d["by"], d["roles"]) for d in decided] == [("ann", ["approver"]), ("fiona", ["finance_controller"])]


def test_a_rejection_needs_a_reason_and_fails_the_step(container: Container, tmp_path: Path) -> None:
    _publish(container, tmp_path, CREDIT)
    run_id, task = _credit(container, 3000)
    assert task is not None
    with pytest.raises(InvalidInput, match="reason"):
        container.automation.decide(task["id"], approve=False, by="fiona")
    container.automation.decide(task["id"], approve=False, by="fiona", comment="customer was already credited")
    _drain(container)
    assert _status(container, run_id) == "failed"


def test_the_audit_trail_holds_each_act_in_order(container: Container, tmp_path: Path) -> None:
    _publish(container, tmp_path, CREDIT)
    _, task = _credit(container, 9000)
    assert task is not None
    container.automation.decide(task["id"], approve=True, by="ann", comment="looks right")
    container.automation.decide(task["id"], approve=True, by="fiona", comment="within budget")
    entries = [e for e in container.audit.export() if e["action"].startswith("task.")]
    assert [(e["actor"], e["action"]) for e in entries] == [("ann", "task.approved"), ("fiona", "task.approved")]
    assert entries[1]["details"]["approvals"] == 2 and entries[1]["details"]["roles"] == ["finance_controller"]
    assert container.audit.verify().ok


def test_a_delegate_decides_with_the_owners_roles_until_the_end_date(
    container: Container, tmp_path: Path, clock: FakeClock
) -> None:
    _publish(container, tmp_path, CREDIT)
    with pytest.raises(InvalidInput, match="themselves"):
        container.directory.delegate("fiona", "fiona", clock.now() + timedelta(days=1))
    with pytest.raises(Conflict, match="does not hold legal"):
        container.directory.delegate("fiona", "bob", clock.now() + timedelta(days=1), ["legal"])
    with pytest.raises(InvalidInput, match="future"):
        container.directory.delegate("fiona", "bob", clock.now() - timedelta(days=1))
    delegation = container.directory.delegate("fiona", "bob", clock.now() + timedelta(days=7), by="fiona")
    assert delegation["roles"] == ["finance_controller"]

    _, first = _credit(container, 3000)
    assert first is not None
    container.automation.decide(first["id"], approve=True, by="bob")
    [decision] = container.automation.task(first["id"])["decisions"]
    assert decision["acting_for"] == ["fiona"] and decision["roles"] == ["finance_controller"]

    clock.advance(days=8)
    _, second = _credit(container, 3000)
    assert second is not None
    with pytest.raises(Forbidden):
        container.automation.decide(second["id"], approve=True, by="bob")

    again = container.directory.delegate("fiona", "bob", clock.now() + timedelta(days=1))
    container.directory.revoke_delegation(again["id"], "fiona")
    with pytest.raises(Forbidden):
        container.automation.decide(second["id"], approve=True, by="bob")
    actions = [e["action"] for e in container.audit.export() if e["action"].startswith("delegation.")]
    assert actions == ["delegation.created", "delegation.created", "delegation.revoked"]


def test_an_unanswered_approval_is_escalated_once(container: Container, tmp_path: Path, clock: FakeClock) -> None:
    _publish(container, tmp_path, ESCALATING)
    run_id = container.automation.start("escalating", {}, actor="olive")
    _drain(container)
    [task] = container.automation.tasks()
    assert task["escalate_to"] == ["finance_controller"]
    with pytest.raises(Forbidden):
        container.automation.decide(task["id"], approve=True, by="fiona")
    clock.advance(hours=1)
    assert container.automation.escalate() == []
    clock.advance(hours=1, seconds=1)
    [escalated] = container.automation.escalate()
    assert escalated["roles"] == ["approver", "finance_controller"]
    assert container.automation.escalate() == []
    timeline = [e["activity"] for e in container.automation.show(run_id)["timeline"]]
    assert "task.escalated" in timeline
    container.automation.decide(task["id"], approve=True, by="fiona")
    _drain(container)
    assert _status(container, run_id) == "succeeded"
    assert "task.escalated" in [e["action"] for e in container.audit.export()]


def test_concurrent_approvals_cannot_race_past_the_rules(container: Container, tmp_path: Path) -> None:
    _publish(container, tmp_path, CREDIT)
    run_id, task = _credit(container, 9000)
    assert task is not None
    outcomes: list[str] = []
    barrier = threading.Barrier(3)

    def approve(name: str) -> None:
        barrier.wait()
        try:
            container.automation.decide(task["id"], approve=True, by=name)
            outcomes.append(f"ok:{name}")
        except Conflict:
            outcomes.append(f"refused:{name}")

    # Three approvers at once, none a finance controller, and one of them twice: at most one may count.
    threads = [threading.Thread(target=approve, args=(n,)) for n in ("ann", "bob", "ann")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(o.split(":")[0] for o in outcomes) == ["ok", "refused", "refused"]
    assert len(container.automation.task(task["id"])["decisions"]) == 1
    assert _status(container, run_id) == "running"

    # Two finance controllers at once when one slot is left: both may count only if they fit; the run settles once.
    run2, task2 = _credit(container, 9000)
    assert task2 is not None
    barrier2 = threading.Barrier(2)
    errors: list[Exception] = []

    def approve2(name: str) -> None:
        barrier2.wait()
        try:
            container.automation.decide(task2["id"], approve=True, by=name)
        except Exception as exc:  # a late second approval may find the task closed
            errors.append(exc)

    threads = [threading.Thread(target=approve2, args=(n,)) for n in ("fiona", "carol")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(isinstance(e, Conflict) for e in errors)
    _drain(container)
    assert _status(container, run2) == "succeeded"
