"""Fault injection: the fakes fail 30% of calls for a while. Every run still finishes, nothing is done twice, and the
calls that failed for good (a receiver refusing deliveries for a while) land in the dead-letter queue and succeed
on replay."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from opsrail.fakes.chaos import Chaos
from opsrail.fakes.jira import create_app as jira_app
from opsrail.fakes.servicenow import create_app as servicenow_app
from opsrail.fakes.webhook_receiver import create_app as receiver_app
from opsrail.settings import Settings
from opsrail.wiring import build

RUNS = 12
PLAYBOOK = """
id: incident-fanout
version: 1
steps:
  - id: itsm
    action: servicenow.create_incident
    with: {short_description: "Sev1 ${ run.input.n }", urgency: 1, impact: 1}
    retry: {attempts: 10, initial: PT0.01S, max: PT0.05S}
  - id: defect
    action: jira.create_issue
    with: {project: ENG, summary: "Sev1 ${ run.input.n }"}
    retry: {attempts: 10, initial: PT0.01S, max: PT0.05S}
  - id: tell-finance
    needs: [itsm, defect]
    action: webhook.post
    with: {endpoint: finance-bus, event_type: incident.filed, payload: {n: "${ run.input.n }"}}
    on_failure: continue
"""


@pytest.mark.slow
def test_every_run_finishes_nothing_twice_and_dead_letters_replay(serve: Callable[[Any], str], tmp_path: Path) -> None:
    servicenow, jira, receiver = servicenow_app(), jira_app(), receiver_app(secret="whsec_test")
    chaos = [Chaos(servicenow, rate=0.3, calls=80, seed=1), Chaos(jira, rate=0.3, calls=120, seed=2)]
    # The receiver refuses (permanently: 400) 30% of what it is sent for a while.
    refusing = Chaos(receiver, rate=0.3, calls=RUNS, status=400, seed=3)
    quick: dict[str, Any] = {"retries": 1, "backoff_s": 0.01, "breaker_failures": 1000}
    connectors = {
        "servicenow": {"base_url": serve(chaos[0]), "username": "admin", "password": "secret", "http": quick},
        "jira": {"base_url": serve(chaos[1]), "email": "bot@example.test", "api_token": "test-token", "http": quick},
        "webhook": {
            "endpoints": {"finance-bus": {"url": f"{serve(refusing)}/in", "secret": "whsec_test"}},
            "http": quick,
        },
    }
    container = build(Settings(home=tmp_path, connectors=connectors), migrate=True)
    (tmp_path / "pb.yaml").write_text(PLAYBOOK)
    container.automation.publish(tmp_path / "pb.yaml", "ada")
    run_ids = [container.automation.start("incident-fanout", {"n": n}, actor="olive") for n in range(RUNS)]

    async def work() -> None:
        for _ in range(400):
            await container.runner.tick()
            if not container.automation.runs(status="running", limit=RUNS):
                return
            await asyncio.sleep(0.01)

    asyncio.run(work())
    statuses = {r["id"]: r["status"] for r in container.automation.runs(limit=RUNS)}
    assert set(statuses) == set(run_ids) and set(statuses.values()) == {"succeeded"}
    assert chaos[0].injected > 0 and chaos[1].injected > 0 and refusing.injected > 0

    # Nothing twice: one incident and one issue per run, whatever was retried.
    correlations = [i["correlation_id"] for i in servicenow.state.incidents.values()]
    assert len(correlations) == len(set(correlations)) == RUNS
    assert len(jira.state.issues) == RUNS

    letters = container.connectors.failures()
    assert len(letters) == refusing.injected and {d["operation"] for d in letters} == {"webhook.post"}
    assert len(receiver.state.deliveries) == RUNS - refusing.injected
    for letter in letters:
        assert asyncio.run(container.connectors.replay(letter["id"], "olive"))["status"] == "replayed"
    delivered = [d["id"] for d in receiver.state.deliveries]
    assert len(delivered) == len(set(delivered)) == RUNS
    container.close()
