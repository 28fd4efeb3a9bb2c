"""The runner against real stores (SQLite and PostgreSQL): claims, operations, timers, tasks, triggers."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from opsrail.engine import CallContext, OperationFailed
from opsrail.model import Conflict, InvalidInput
from opsrail.services import EventQuery
from opsrail.wiring import Container
from tests.support import FakeClock, cloudevent, drain, incident_event, publish

SEV1 = """
id: sev1
version: 1
trigger:
  events: [com.opsrail.incident.opened]
  when: "event.data.severity == 1"
steps:
  - id: classify
    action: core.set
    with: {team: "sre", credit_exposure: 250.0}
  - id: defect
    needs: [classify]
    action: test.record
    with: {summary: "${ run.input.title }", team: "${ steps.classify.output.team }"}
    retry: {attempts: 3, initial: PT2S}
  - id: credit
    needs: [classify]
    when: "steps.classify.output.credit_exposure > 0.0"
    approval: {roles: [finance_controller], timeout: P1D}
  - id: resolved
    needs: [defect]
    wait: {event: com.opsrail.incident.resolved, correlate: "event.data.id == run.input.id", timeout: PT4H}
"""


class Vendor:
    """An operation that records each effect by idempotency key, and can answer 503 a few times first."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.failures = 0

    async def record(self, params: dict[str, Any], call: CallContext) -> Any:
        if self.failures:
            self.failures -= 1
            raise OperationFailed("vendor answered 503", retryable=True)
        self.calls.append({"key": call.idempotency_key, "attempt": call.attempt, **params})
        return {"issue": f"ENG-{len(self.calls)}"}


@pytest.fixture
def vendor(container: Container) -> Vendor:
    fake = Vendor()
    container.runner.operations.register("test.record", fake.record)
    return fake


def test_an_event_starts_a_run_that_runs_in_parallel_waits_and_finishes(
    container: Container, tmp_path: Path, clock: FakeClock, vendor: Vendor
) -> None:
    publish(container, tmp_path, SEV1)
    ingest = container.ingestion
    ingest.ingest_single(orjson.dumps(incident_event("e-low", severity=3)))
    ingest.ingest_single(orjson.dumps(incident_event("e-sev1", severity=1, title="Checkout down")))
    drain(container)
    [run] = container.automation.runs()
    detail = container.automation.show(run["id"])
    steps = {s["id"]: s["status"] for s in detail["steps"]}
    assert steps == {"classify": "succeeded", "defect": "succeeded", "credit": "waiting", "resolved": "waiting"}
    assert vendor.calls == [{"key": f"{run['id']}:defect", "attempt": 1, "summary": "Checkout down", "team": "sre"}]

    [task] = container.automation.tasks("finance_controller")
    container.automation.decide(task["id"], approve=True, by="fiona")
    assert container.automation.tasks() == []

    ingest.ingest_single(
        orjson.dumps(
            cloudevent(
                "e-res-other",
                type="com.opsrail.incident.resolved",
                data={"id": "other", "title": "t", "status": "resolved"},
            )
        )
    )
    drain(container)
    assert container.automation.show(run["id"])["status"] == "running"
    ingest.ingest_single(
        orjson.dumps(
            cloudevent(
                "e-res",
                type="com.opsrail.incident.resolved",
                data={"id": "acme:INC-1", "title": "t", "status": "resolved"},
            )
        )
    )
    drain(container)
    detail = container.automation.show(run["id"])
    assert detail["status"] == "succeeded"
    activities = [e["activity"] for e in detail["timeline"]]
    assert activities[0] == "run.started" and activities[-1] == "run.succeeded"
    assert "task.opened" in activities

    # The same trigger event again starts nothing new.
    ingest.ingest_single(orjson.dumps(incident_event("e-sev1", severity=1)))
    drain(container)
    assert len(container.automation.runs()) == 1


def test_retries_wait_for_the_clock(container: Container, tmp_path: Path, clock: FakeClock, vendor: Vendor) -> None:
    publish(container, tmp_path, SEV1)
    vendor.failures = 1
    run_id = container.automation.start("sev1", {"title": "x", "id": "i"})
    drain(container)
    defect = {s["id"]: s for s in container.automation.show(run_id)["steps"]}["defect"]
    assert defect["status"] == "waiting" and defect["waiting_for"] == "retry"
    clock.advance(seconds=2)
    drain(container)
    defect = {s["id"]: s for s in container.automation.show(run_id)["steps"]}["defect"]
    assert defect["status"] == "succeeded" and defect["attempt"] == 2
    assert [c["key"] for c in vendor.calls] == [f"{run_id}:defect"]


def test_tasks_need_distinct_approvers_and_reasons_to_reject(container: Container, tmp_path: Path) -> None:
    publish(
        container,
        tmp_path,
        """
id: four-eyes
version: 1
steps:
  - id: approve
    approval: {roles: [finance_controller, approver], count: 2}
""",
    )
    run_id = container.automation.start("four-eyes", {})
    drain(container)
    [task] = container.automation.tasks()
    container.automation.decide(task["id"], approve=True, by="ann")
    with pytest.raises(Conflict, match="counts once"):
        container.automation.decide(task["id"], approve=True, by="ann")
    assert container.automation.show(run_id)["status"] == "running"
    with pytest.raises(InvalidInput, match="reason"):
        container.automation.decide(task["id"], approve=False, by="bob")
    container.automation.decide(task["id"], approve=True, by="bob")
    assert container.automation.show(run_id)["status"] == "succeeded"


def test_an_expired_lease_is_taken_over(container: Container, tmp_path: Path, clock: FakeClock) -> None:
    publish(
        container,
        tmp_path,
        """
id: one
version: 1
steps:
  - id: only
    action: core.set
""",
    )
    run_id = container.automation.start("one", {})
    store = container.automation.store
    [claimed] = store.claim("dead-worker", clock.now(), 30, 10)
    assert store.claim("other", clock.now(), 30, 10) == []
    clock.advance(seconds=31)
    drain(container)
    detail = container.automation.show(run_id)
    assert detail["status"] == "succeeded" and detail["steps"][0]["attempt"] == claimed.attempt + 1


def test_published_versions_never_change(container: Container, tmp_path: Path) -> None:
    publish(container, tmp_path, SEV1)
    publish(container, tmp_path, SEV1)  # the same text again is fine
    with pytest.raises(Conflict, match="raise `version`"):
        publish(container, tmp_path, SEV1.replace("PT4H", "PT5H"))
    publish(container, tmp_path, SEV1.replace("version: 1", "version: 2"))
    versions = {(p["version"], p["active"]) for p in container.automation.playbooks()}
    assert versions == {(1, False), (2, True)}


def test_an_sla_breach_is_an_escalation_event_that_starts_a_playbook(
    container: Container, tmp_path: Path, clock: FakeClock
) -> None:
    publish(
        container,
        tmp_path,
        """
id: provision
version: 1
steps:
  - id: tenant
    wait: {event: com.opsrail.implementation_task.done}
    sla: {target: PT2H, warn_at: 0.75}
""",
        "provision.yaml",
    )
    publish(
        container,
        tmp_path,
        """
id: sla-escalation
version: 1
trigger:
  events: [com.opsrail.escalation.opened]
  when: "event.data.level == 2"
steps:
  - id: page
    notify: {channel: core.log, to: [sdm], message: "${ run.input.reason }"}
""",
        "escalation.yaml",
    )
    run_id = container.automation.start("provision", {})
    drain(container)
    clock.advance(minutes=91)
    drain(container)
    assert [s["id"] for s in container.automation.show(run_id)["steps"]] == ["tenant"]
    clock.advance(minutes=30)
    drain(container)
    escalations = container.ingestion.events.find(EventQuery(kind="escalation"))
    assert [e.data["level"] for e in escalations] == [2, 1]
    assert escalations[0].data["attributes"]["run_id"] == run_id
    [page_run] = container.automation.runs(playbook_id="sla-escalation")
    assert page_run["status"] == "succeeded"
    assert "breached its SLA" in page_run["input"]["reason"]
    timeline = [e["activity"] for e in container.automation.show(run_id)["timeline"]]
    assert timeline.count("sla.near_breach") == 1 and timeline.count("sla.breached") == 1


def test_a_canary_takes_its_share_of_new_runs_and_running_ones_keep_their_version(
    container: Container, tmp_path: Path
) -> None:
    base = "id: canary\nversion: {v}\nsteps:\n  - id: only\n    wait: {{duration: PT1H}}\n"
    publish(container, tmp_path, base.format(v=1), "v1.yaml")
    early = container.automation.start("canary", {})
    publish(container, tmp_path, base.format(v=2), "v2.yaml")
    container.automation.activate("canary", 1)
    container.automation.activate("canary", 2, canary_percent=30)
    runs = container.runner.start_runs("canary", [{} for _ in range(400)])
    versions = [container.automation.show(r)["version"] for r in runs]
    assert 0.2 < versions.count(2) / len(versions) < 0.4
    assert {p["version"]: p["canary_percent"] for p in container.automation.playbooks()} == {1: 0, 2: 30}
    assert container.automation.show(early)["version"] == 1  # never changed silently
    container.automation.activate("canary", 2, canary_percent=0)
    assert {container.automation.show(r)["version"] for r in container.runner.start_runs("canary", [{}] * 20)} == {1}


MIGRATE_V1 = """
id: migrating
version: {version}
steps:
  - id: prepare
    action: core.set
  - id: {approval}
    needs: [prepare]
    approval: {{roles: [approver]}}
{extra}"""


def test_in_flight_runs_migrate_to_a_new_version_after_checking_the_mapping(
    container: Container, tmp_path: Path
) -> None:
    publish(container, tmp_path, MIGRATE_V1.format(version=1, approval="approve", extra=""), "m1.yaml")
    run_id = container.automation.start("migrating", {})
    drain(container)
    v2_extra = "  - id: book\n    needs: [sign-off]\n    action: core.set\n"
    publish(container, tmp_path, MIGRATE_V1.format(version=2, approval="sign-off", extra=v2_extra), "m2.yaml")
    v3 = (
        "id: migrating\nversion: 3\nsteps:\n  - id: prepare\n    action: core.set\n"
        "  - id: approve\n    action: core.log\n"
    )
    publish(container, tmp_path, v3, "m3.yaml")

    with pytest.raises(InvalidInput, match="mapping"):
        container.automation.migrate("migrating", 1, 2, {"approve": "nothing"})
    with pytest.raises(InvalidInput, match="both version 1: there is nothing to migrate"):
        container.automation.migrate("migrating", 1, 1)
    refused = container.automation.migrate("migrating", 1, 3)
    assert refused["moved"] == [] and "approval" in refused["refused"][0]["reason"]
    dry = container.automation.migrate("migrating", 1, 2, {"approve": "sign-off"})
    assert dry["moved"] == [run_id] and container.automation.show(run_id)["version"] == 1

    done = container.automation.migrate("migrating", 1, 2, {"approve": "sign-off"}, apply=True, actor="ops")
    assert done["moved"] == [run_id]
    detail = container.automation.show(run_id)
    assert detail["version"] == 2
    assert {s["id"]: s["status"] for s in detail["steps"]} == {
        "prepare": "succeeded",
        "sign-off": "waiting",
        "book": "pending",
    }
    assert "run.migrated" in [e["activity"] for e in detail["timeline"]]
    [task] = container.automation.tasks()
    assert task["step_id"] == "sign-off"
    container.automation.decide(task["id"], approve=True, by="ann")
    drain(container)
    assert container.automation.show(run_id)["status"] == "succeeded"


def test_a_call_step_runs_a_child_playbook_and_gets_its_outputs(container: Container, tmp_path: Path) -> None:
    publish(
        container,
        tmp_path,
        """
id: provision-tenant
version: 1
steps:
  - id: create
    action: core.set
    with: {tenant: "${ run.input.name + '-prod' }"}
""",
        "child.yaml",
    )
    publish(
        container,
        tmp_path,
        """
id: onboarding
version: 1
steps:
  - id: tenant
    call: {playbook: provision-tenant, input: {name: "${ run.input.customer }"}}
  - id: welcome
    needs: [tenant]
    action: core.set
    with: {message: "${ 'welcome to ' + steps.tenant.output.create.tenant }"}
  - id: broken
    call: {playbook: no-such-playbook}
    on_failure: continue
""",
        "parent.yaml",
    )
    run_id = container.automation.start("onboarding", {"customer": "acme"})
    drain(container)
    detail = container.automation.show(run_id)
    steps = {s["id"]: s for s in detail["steps"]}
    assert detail["status"] == "succeeded", detail
    assert steps["welcome"]["output"] == {"message": "welcome to acme-prod"}
    assert "no-such-playbook" in steps["broken"]["error"]
    [child] = container.automation.runs(playbook_id="provision-tenant")
    assert child["status"] == "succeeded" and child["input"] == {"name": "acme"}
    assert "step.called" in [e["activity"] for e in detail["timeline"]]


def test_a_claim_cut_by_its_limit_leaves_the_last_runs_steps_together(
    container: Container, tmp_path: Path, clock: FakeClock
) -> None:
    publish(
        container,
        tmp_path,
        """
id: fan
version: 1
steps:
  - {id: a, action: core.set}
  - {id: b, action: core.set}
  - {id: c, action: core.set}
""",
    )
    first, second = container.automation.start("fan", {}), container.automation.start("fan", {})
    store = container.automation.store
    cut = store.claim("worker-1", clock.now(), 30, 5)  # three ready steps each: five would split a run
    assert sorted(c.step_id for c in cut) == ["a", "b", "c"] and len({c.run_id for c in cut}) == 1
    rest = store.claim("worker-2", clock.now(), 30, 5)
    assert sorted(c.step_id for c in rest) == ["a", "b", "c"] and {c.run_id for c in cut + rest} == {first, second}
    # One run with more ready steps than the limit is still claimed, as far as the limit goes.
    third = container.automation.start("fan", {})
    assert [c.run_id for c in store.claim("worker-3", clock.now(), 30, 2)] == [third, third]


def test_a_wake_up_ends_an_idle_workers_pause(container: Container, tmp_path: Path) -> None:
    publish(container, tmp_path, "id: one\nversion: 1\nsteps:\n  - {id: only, action: core.set}\n")

    async def scenario() -> float:
        stop = asyncio.Event()
        worker = asyncio.create_task(container.runner.run_forever(stop, idle_seconds=30))
        await asyncio.sleep(0.2)  # nothing to do: the worker pauses for up to 30 s
        run_id = container.automation.start("one", {})
        started = time.monotonic()
        container.runner.wake()
        while container.automation.show(run_id)["status"] != "succeeded":
            assert time.monotonic() - started < 5, "the worker slept through the wake-up"
            await asyncio.sleep(0.01)
        took = time.monotonic() - started
        stop.set()
        container.runner.wake()
        await asyncio.wait_for(worker, 5)
        return took

    assert asyncio.run(scenario()) < 1.0


def test_the_event_cursor_never_moves_back(container: Container) -> None:
    store = container.automation.store
    assert store.events_after("engine-test", 1)[0] == 0
    store.move_cursor("engine-test", 10)
    store.move_cursor("engine-test", 5)  # a worker that read an older batch saves after another moved on
    assert store.events_after("engine-test", 1)[0] == 10
    store.start_triggered([], ("engine-test", 7))
    assert store.events_after("engine-test", 1)[0] == 10
    store.move_cursor("engine-test", 12)
    assert store.events_after("engine-test", 1)[0] == 12


@pytest.mark.parametrize("in_thread", [True, False])
def test_a_worker_waiting_on_its_store_leaves_the_event_loop_free_when_told(
    container: Container, monkeypatch: pytest.MonkeyPatch, in_thread: bool
) -> None:
    """With ``store_in_thread`` (set for PostgreSQL) the API's requests keep being served while a tick waits on
    the database; without it (SQLite, where a hand-off costs more than the wait) the tick holds the loop."""
    runner = container.runner
    monkeypatch.setattr(runner, "store_in_thread", in_thread)
    read = runner.store.events_after

    def slow_read(cursor: str, limit: int) -> Any:
        time.sleep(0.3)  # a database round trip under load, made long enough to count beats during it
        return read(cursor, limit)

    monkeypatch.setattr(runner.store, "events_after", slow_read)

    async def beats_during_a_tick() -> int:
        beats = 0

        async def beat() -> None:
            nonlocal beats
            while True:
                await asyncio.sleep(0.01)
                beats += 1

        task = asyncio.create_task(beat())
        await asyncio.sleep(0)
        await runner.tick()
        task.cancel()
        return beats

    beats = asyncio.run(beats_during_a_tick())
    assert beats >= 10 if in_thread else beats <= 2
