"""A run's input: what a trigger gives it (the event's data or the trigger's `input` templates), and the check that a
run started by hand has the same shape."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from opsrail.model import InvalidInput
from opsrail.services import EventQuery
from opsrail.wiring import Container
from tests.support import drain, incident_event, publish

BY_INCIDENT = """
id: by-incident
version: 1
trigger:
  events: [com.opsrail.incident.opened]
steps:
  - id: note
    action: core.set
    with: {title: "${ run.input.title }"}
"""

TEMPLATED = """
id: templated
version: 1
trigger:
  events: [com.opsrail.incident.opened]
  input:
    ticket: "${ event.data.id }"
    headline: "Sev${ event.data.severity }: ${ event.data.title }"
    source: "${ event.source }"
steps:
  - id: note
    action: core.set
    with: {headline: "${ run.input.headline }"}
"""

NO_TRIGGER = """
id: by-hand
version: 1
steps:
  - id: note
    action: core.set
    with: {any: "${ run.input }"}
"""


def test_the_trigger_input_templates_make_the_run_input(container: Container, tmp_path: Path) -> None:
    publish(container, tmp_path, TEMPLATED)
    container.ingestion.ingest_single(orjson.dumps(incident_event("e-1", severity=2, title="Checkout slow")))
    drain(container)
    [run] = container.automation.runs()
    detail = container.automation.show(run["id"])
    assert detail["input"] == {"ticket": "acme:INC-1", "headline": "Sev2: Checkout slow", "source": "monitoring/acme"}
    assert {s["id"]: s["output"] for s in detail["steps"]}["note"] == {"headline": "Sev2: Checkout slow"}


def test_an_event_the_templates_cannot_render_starts_nothing_and_raises_one_alert(
    container: Container, tmp_path: Path
) -> None:
    publish(container, tmp_path, TEMPLATED)
    for event_id in ("e-2", "e-3"):
        event = incident_event(event_id, severity=1)
        del event["data"]["severity"]
        container.ingestion.ingest_single(orjson.dumps(event))
        drain(container)
    assert container.automation.runs() == []
    # People hear of it once per playbook version (an escalation event, visible in `opsrail events list`).
    [alert] = container.ingestion.events.find(EventQuery(kind="escalation"))
    assert alert.source == "opsrail/governance" and alert.data["attributes"]["alert"] == "playbook.trigger_failed"
    assert alert.data["attributes"]["subject"] == "templated@1" and alert.data["attributes"]["event"] == "e-2"
    assert "the trigger's input of templated version 1 could not be evaluated" in alert.data["reason"]


def test_a_failing_trigger_on_alerts_does_not_feed_itself(container: Container, tmp_path: Path) -> None:
    publish(
        container,
        tmp_path,
        """
id: on-alerts
version: 1
trigger:
  events: [com.opsrail.escalation.opened]
  input: {missing: "${ event.data.nothing.here }"}
steps:
  - id: note
    action: core.set
    with: {x: 1}
""",
    )
    publish(container, tmp_path, TEMPLATED, name="templated.yaml")
    event = incident_event("e-4", severity=1)
    del event["data"]["severity"]
    container.ingestion.ingest_single(orjson.dumps(event))
    drain(container)
    drain(container)
    # templated's failure raised one alert; on-alerts cannot render it, and that is logged, not alerted again.
    assert len(container.ingestion.events.find(EventQuery(kind="escalation"))) == 1
    assert container.automation.runs() == []


def test_a_manual_input_must_be_the_triggering_kind(container: Container, tmp_path: Path) -> None:
    publish(container, tmp_path, BY_INCIDENT)
    with pytest.raises(InvalidInput) as refused:
        container.automation.start("by-incident", {"titel": "typo", "severity": 9})
    assert "com.opsrail.incident.opened" in str(refused.value) and "canonical incident" in str(refused.value)
    assert "--skip-input-check" in (refused.value.hint or "")
    paths = {error.path for error in refused.value.errors}
    assert {"$.input.id", "$.input.title", "$.input.titel", "$.input.severity"} <= paths
    assert container.automation.runs() == []

    # The key Opsrail adds for separation of duties is not part of the canonical object, and is let through.
    run_id = container.automation.start(
        "by-incident", {"id": "acme:INC-9", "title": "Login fails", "requested_by": "olive"}, actor="olive"
    )
    drain(container)
    assert container.automation.show(run_id)["status"] == "succeeded"

    unchecked = container.automation.start("by-incident", {"titel": "typo"}, check_input=False)
    assert container.automation.show(unchecked)["input"] == {"titel": "typo"}


def test_a_manual_input_must_have_the_trigger_input_keys(container: Container, tmp_path: Path) -> None:
    publish(container, tmp_path, TEMPLATED)
    with pytest.raises(InvalidInput) as refused:
        container.automation.start("templated", {"headline": "x"})
    assert "lacks ticket, source" in str(refused.value)
    assert [e.path for e in refused.value.errors] == ["$.input.ticket", "$.input.source"]
    run_id = container.automation.start("templated", {"ticket": "t", "headline": "h", "source": "s", "extra": 1})
    assert container.automation.show(run_id)["status"] == "running"


def test_without_a_trigger_any_input_starts(container: Container, tmp_path: Path) -> None:
    publish(container, tmp_path, NO_TRIGGER)
    run_id = container.automation.start("by-hand", {"whatever": [1, 2]})
    drain(container)
    assert container.automation.show(run_id)["status"] == "succeeded"
