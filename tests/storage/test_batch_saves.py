"""Saving runs in batches (``save_runs``): every column written as the one-by-one save writes it, the log in order,
and a run saved meanwhile by another worker left out while the rest land. On SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from opsrail.engine import Log, RunState, StepState
from opsrail.storage import SqlRunStore, create_engine, upgrade
from opsrail.storage._tables import as_utc, run_steps
from tests.support import SequentialIds

AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def store(database_url: str) -> Iterator[SqlRunStore]:
    engine = create_engine(database_url)
    upgrade(engine)
    yield SqlRunStore(engine, SequentialIds())
    engine.dispose()


def _new_run(run_id: str) -> RunState:
    steps = {name: StepState(id=name) for name in ("a", "b", "c")}
    return RunState(id=run_id, playbook_id="p", version=1, status="running", input={}, steps=steps, created_at=AT)


def _advance(run: RunState, n: int) -> list[Any]:
    """Step a succeeds with an output that exercises JSON, step b waits on a timer with an SLA clock."""
    later = AT + timedelta(seconds=n + 1)
    a, b = run.steps["a"], run.steps["b"]
    a.status, a.attempt, a.started_at, a.finished_at = "succeeded", 1, AT, later
    a.output = {"n": n, "name": "Zoë ✓", "nested": [1, None, {"ok": True}], "when": later}
    b.status, b.waiting_for, b.due_at, b.handler = "waiting", "timer", later + timedelta(hours=1), True
    b.sla_warn_at, b.sla_due_at, b.sla_state = later, later + timedelta(hours=2), "running"
    b.activated_by, b.recovered_by, b.error = "a", "c", "first try failed"
    a.changed = b.changed = True
    return [
        Log(run.id, "a", "step_succeeded", later, {"actor": "worker-1", "at": later}),
        Log(run.id, "b", "step_waiting", later + timedelta(microseconds=1), {"reason": "timer"}),
    ]


def _one_by_one(store: SqlRunStore, ids: list[str]) -> dict[str, Any]:
    """What the same changes look like saved with ``save_run``: the reference for the batch."""
    loaded = store.load_runs(ids)
    for n, run_id in enumerate(ids):
        run, version = loaded[run_id]
        assert store.save_run(run, version, _advance(run, n))
    return _snapshot(store, ids)


def _snapshot(store: SqlRunStore, ids: list[str]) -> dict[str, Any]:
    loaded = store.load_runs(ids)
    with store.engine.connect() as conn:
        leases = conn.execute(
            sa.select(run_steps.c.step_id, run_steps.c.lease_owner).where(run_steps.c.run_id.in_(ids))
        ).all()
    return {
        "runs": {i: (loaded[i][0], loaded[i][1]) for i in ids},
        "timelines": {i: store.timeline(i) for i in ids},
        "leases": sorted(set(leases), key=str),
    }


def test_a_batch_writes_what_saving_runs_one_by_one_writes(store: SqlRunStore) -> None:
    first, second = ["r1", "r2", "r3"], ["r4", "r5", "r6"]
    store.create_runs([(_new_run(i), []) for i in first + second])
    with store.engine.begin() as conn:  # claimed steps: a save gives up the lease
        conn.execute(run_steps.update().values(lease_owner="worker-1", lease_expires_at=AT))
    expected = _one_by_one(store, first)
    loaded = store.load_runs(second)
    changes = []
    for n, run_id in enumerate(second):
        run, version = loaded[run_id]
        changes.append((run, version, _advance(run, n)))
    changes[-1][0].status, changes[-1][0].error = "failed", "b timed out"
    changes[-1][0].finished_at = AT + timedelta(minutes=3)
    assert store.save_runs(changes) == set()
    saved = _snapshot(store, second)
    for mine, theirs in zip(second, first, strict=True):
        run, version = saved["runs"][mine]
        reference, reference_version = expected["runs"][theirs]
        assert version == reference_version == 2
        assert run.steps == reference.steps
        assert run.steps["a"].output == {
            "n": first.index(theirs),
            "name": "Zoë ✓",
            "nested": [1, None, {"ok": True}],
            "when": (AT + timedelta(seconds=first.index(theirs) + 1)).isoformat(),
        }
        assert saved["timelines"][mine] == expected["timelines"][theirs]
    assert [saved["runs"][i][0].status for i in second] == ["running", "running", "failed"]
    assert saved["runs"]["r6"][0].error == "b timed out"
    assert saved["runs"]["r6"][0].finished_at == AT + timedelta(minutes=3)
    # The saved steps give up their lease; step c, untouched, keeps its own.
    assert saved["leases"] == expected["leases"] == [("a", None), ("b", None), ("c", "worker-1")]


def test_a_run_saved_meanwhile_is_left_out_and_the_others_land(store: SqlRunStore) -> None:
    ids = ["r1", "r2", "r3"]
    store.create_runs([(_new_run(i), []) for i in ids])
    loaded = store.load_runs([*ids, "missing", "r1"])  # an unknown id is left out; a repeated one loads once
    assert sorted(loaded) == ids and all(len(loaded[i][0].steps) == 3 for i in ids)
    other, other_version = store.load_run("r2")  # another worker saves r2 first
    other.status = "cancelled"
    assert store.save_run(other, other_version, [Log("r2", None, "run_cancelled", AT, {})])
    changes = []
    for n, run_id in enumerate(ids):
        run, version = loaded[run_id]
        changes.append((run, version, _advance(run, n)))
    assert store.save_runs(changes) == {"r2"}
    after = store.load_runs(ids)
    assert [after[i][1] for i in ids] == [2, 2, 2]
    assert after["r2"][0].status == "cancelled" and after["r2"][0].steps["a"].status == "pending"
    assert after["r1"][0].steps["a"].status == after["r3"][0].steps["a"].status == "succeeded"
    # Nothing of the rolled-back first try stays behind: each saved run has its two entries once.
    assert [e["activity"] for e in store.timeline("r1")] == ["step_succeeded", "step_waiting"]
    assert [e["activity"] for e in store.timeline("r2")] == ["run_cancelled"]
    assert [e["activity"] for e in store.timeline("r3")] == ["step_succeeded", "step_waiting"]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_batch_the_server_refuses_raises_sqlalchemys_error_and_saves_nothing(store: SqlRunStore) -> None:
    store.create_runs([(_new_run(i), []) for i in ("r1", "r2")])
    loaded = store.load_runs(["r1", "r2"])
    changes = [(run, version, _advance(run, 0)) for run, version in loaded.values()]
    changes[1][0].steps["a"].status = "x" * 40  # type: ignore[assignment]  # longer than the column allows
    with pytest.raises(sa.exc.DBAPIError, match="too long"):
        store.save_runs(changes)
    after = store.load_runs(["r1", "r2"])
    assert [after[i][1] for i in ("r1", "r2")] == [1, 1] and store.timeline("r1") == []


def test_a_claim_leases_its_steps_and_a_later_claim_keeps_the_first_start(store: SqlRunStore) -> None:
    runs = [_new_run(i) for i in ("r1", "r2")]
    for run in runs:
        run.steps["a"].status = "ready"
    runs[1].steps["b"].status = "ready"
    store.create_runs([(run, []) for run in runs])
    first = store.claim("worker-1", AT, 30.0, 10)
    assert sorted((c.run_id, c.step_id, c.attempt) for c in first) == [("r1", "a", 1), ("r2", "a", 1), ("r2", "b", 1)]
    assert store.claim("worker-2", AT + timedelta(seconds=10), 30.0, 10) == []  # leased for 30 s
    later = AT + timedelta(minutes=1)
    again = store.claim("worker-2", later, 30.0, 10)  # the leases ran out: the steps are taken again
    assert sorted((c.run_id, c.step_id, c.attempt) for c in again) == [("r1", "a", 2), ("r2", "a", 2), ("r2", "b", 2)]
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                run_steps.c.step_id,
                run_steps.c.status,
                run_steps.c.lease_owner,
                run_steps.c.lease_expires_at,
                run_steps.c.started_at,
            ).where(run_steps.c.run_id == "r2")
        ).all()
    taken = {r[0]: r[1:] for r in rows}
    until = later + timedelta(seconds=30)
    for step in ("a", "b"):
        status, owner, expires, started = taken[step]
        assert (status, owner) == ("running", "worker-2")
        assert (as_utc(expires), as_utc(started)) == (until, AT)  # the first start is kept
    assert taken["c"][:2] == ("pending", None)
