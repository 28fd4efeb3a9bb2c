"""The ServiceNow connector against the fake Table API over real HTTP: incidents created once per correlation id
(also when an answer is lost), updates with work notes, permanent and retryable errors, Retry-After, timeouts,
credentials, ``check()``, a call through the engine, and the fake's query and pagination. Each scenario runs in one
``asyncio.run`` because an ``httpx.AsyncClient`` belongs to one event loop."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError

from opsrail.connectors import ConnectorError, HttpPolicy, LoopLocalClient, bind
from opsrail.connectors.servicenow import (
    CreateIncident,
    GetIncident,
    Incident,
    IncidentCreated,
    ServiceNowConnector,
    UpdateIncident,
    correlation_id_for,
    servicenow_error_message,
)
from opsrail.engine import CallContext, OperationFailed, Operations
from opsrail.fakes.servicenow import create_app
from tests.connectors.conftest import RecordedSleep

T = TypeVar("T")
Serve = Callable[[FastAPI], str]
SYS_ID = re.compile(r"^[0-9a-f]{32}$")
UNKNOWN = "0" * 32


def call(step: str, attempt: int = 1) -> CallContext:
    return CallContext("run-1", step, attempt, f"run-1:{step}")


def run(
    url: str,
    sleep: RecordedSleep,
    scenario: Callable[[ServiceNowConnector], Awaitable[T]],
    *,
    config: dict[str, Any] | None = None,
    **policy: Any,
) -> T:
    """Runs ``scenario`` with a connector to ``url`` on a client that lives in this one event loop."""

    async def main() -> T:
        async with LoopLocalClient() as client:
            connector = ServiceNowConnector(
                {"base_url": url, "username": "admin", "password": "secret", **(config or {})},
                client,
                policy=HttpPolicy(**{"retries": 3, "backoff_s": 0.01, **policy}),
                sleep=sleep,
            )
            return await scenario(connector)

    return asyncio.run(main())


OUTAGE = CreateIncident(
    short_description="Checkout API returning 502s",
    description="Error rate above 5% for 10 minutes",
    urgency=2,
    impact=1,
    assignment_group="Payments SRE",
)


# -- create_incident ------------------------------------------------------------------------------------------------


def test_create_looks_for_the_correlation_id_then_creates(serve: Serve, recorded_sleep: RecordedSleep) -> None:
    app = create_app()
    created = run(serve(app), recorded_sleep, lambda c: c.create_incident(OUTAGE, call("open")))
    assert created.created and SYS_ID.match(created.sys_id) and created.number == "INC0010001"
    lookup, insert = app.state.requests
    assert (lookup["method"], lookup["path"]) == ("GET", "/api/now/table/incident")
    assert lookup["query"]["sysparm_query"] == "correlation_id=run-1:open^ORDERBYsys_created_on"
    assert lookup["query"]["sysparm_limit"] == "1"
    assert insert["method"] == "POST" and insert["body"] == {
        "short_description": "Checkout API returning 502s",
        "description": "Error rate above 5% for 10 minutes",
        "urgency": "2",
        "impact": "1",
        "assignment_group": "Payments SRE",
        "correlation_id": "run-1:open",
        "correlation_display": "opsrail",
    }
    record = app.state.incidents[created.sys_id]
    assert record["priority"] == "2" and record["state"] == "1" and record["active"] == "true"


def test_the_same_key_twice_gives_one_incident(serve: Serve, recorded_sleep: RecordedSleep) -> None:
    app = create_app()

    async def scenario(connector: ServiceNowConnector) -> list[IncidentCreated]:
        first = await connector.create_incident(OUTAGE, call("open"))
        again = await connector.create_incident(OUTAGE, call("open", attempt=2))  # the step retried
        mine = OUTAGE.model_copy(update={"correlation_id": "alert-42"})
        named = [await connector.create_incident(mine, call(step)) for step in ("x", "y")]  # other keys, one id
        return [first, again, *named]

    first, again, named, named_again = run(serve(app), recorded_sleep, scenario)
    assert again == IncidentCreated(sys_id=first.sys_id, number=first.number, created=False)
    assert named.created and not named_again.created and named_again.sys_id == named.sys_id
    assert len(app.state.incidents) == 2
    assert [r["method"] for r in app.state.requests] == ["GET", "POST", "GET", "GET", "POST", "GET"]


def test_a_create_whose_answer_was_lost_is_found_not_made_twice(serve: Serve, recorded_sleep: RecordedSleep) -> None:
    app = create_app()
    app.state.fail_after_create = 1  # the insert happens, the answer is a 500
    created = run(serve(app), recorded_sleep, lambda c: c.create_incident(OUTAGE, call("open")))
    assert created.created and len(app.state.incidents) == 1 and created.sys_id in app.state.incidents
    assert [r["method"] for r in app.state.requests] == ["GET", "POST", "GET"]
    assert len(recorded_sleep.waits) == 1


def test_long_or_caret_keys_become_a_digest() -> None:
    assert correlation_id_for("run-1:open") == "run-1:open"
    for key in ("r" * 101, "run^1:open"):
        derived = correlation_id_for(key)
        assert re.fullmatch(r"opsrail-[0-9a-f]{40}", derived) and derived == correlation_id_for(key)
    with pytest.raises(ValidationError):
        CreateIncident(short_description="x", correlation_id="a^b")


# -- update_incident and get_incident ---------------------------------------------------------------------------------


def test_update_patches_fields_and_adds_a_work_note(serve: Serve, recorded_sleep: RecordedSleep) -> None:
    app = create_app()

    async def scenario(connector: ServiceNowConnector) -> tuple[Incident, Incident]:
        created = await connector.create_incident(OUTAGE, call("open"))
        change = UpdateIncident(sys_id=created.sys_id, fields={"state": 2, "urgency": 1}, work_notes="Rolled back")
        updated = await connector.update_incident(change, call("update"))
        return updated, await connector.get_incident(GetIncident(sys_id=created.sys_id), call("read"))

    updated, read = run(serve(app), recorded_sleep, scenario)
    assert updated.state == "2" and updated.priority == "1" and updated.number == "INC0010001"
    assert read == updated and read.assignment_group == "Payments SRE" and read.correlation_id == "run-1:open"
    patch = app.state.requests[-2]
    assert patch["method"] == "PATCH" and patch["body"] == {"state": 2, "urgency": 1, "work_notes": "Rolled back"}
    assert [(n["element"], n["value"]) for n in app.state.journal] == [("work_notes", "Rolled back")]
    assert app.state.incidents[updated.sys_id]["sys_mod_count"] == "1"


def test_updates_refuse_system_fields_and_need_something_to_do() -> None:
    with pytest.raises(ValidationError, match="system fields"):
        UpdateIncident(sys_id=UNKNOWN, fields={"sys_id": "x"})
    with pytest.raises(ValidationError, match="give fields, work_notes or both"):
        UpdateIncident(sys_id=UNKNOWN)


# -- errors, retries and timeouts ---------------------------------------------------------------------------------


def test_a_404_is_permanent_not_retried_and_explained_by_the_error_body(
    serve: Serve, recorded_sleep: RecordedSleep
) -> None:
    app = create_app()
    with pytest.raises(ConnectorError) as caught:
        run(serve(app), recorded_sleep, lambda c: c.get_incident(GetIncident(sys_id=UNKNOWN), call("read")))
    assert not caught.value.retryable and caught.value.status == 404
    assert "No Record found: Record doesn't exist or ACL restricts the record retrieval" in str(caught.value)
    assert len(app.state.requests) == 1 and recorded_sleep.waits == []


def test_5xx_is_retried_then_the_incident_is_created_once(serve: Serve, recorded_sleep: RecordedSleep) -> None:
    app = create_app(fail_first=2)
    created = run(serve(app), recorded_sleep, lambda c: c.create_incident(OUTAGE, call("open")))
    assert created.created and len(app.state.incidents) == 1
    assert len(recorded_sleep.waits) == 2
    assert [r["method"] for r in app.state.requests] == ["GET", "GET", "GET", "POST"]


def test_429_is_retried_after_the_retry_after_it_names(serve: Serve, recorded_sleep: RecordedSleep) -> None:
    app = create_app(rate_limit_first=1, retry_after_s=2.0)
    created = run(serve(app), recorded_sleep, lambda c: c.create_incident(OUTAGE, call("open")))
    assert created.created and recorded_sleep.waits == [2.0]


def test_a_rate_limited_create_waits_then_looks_again_before_posting_again(
    serve: Serve, recorded_sleep: RecordedSleep
) -> None:
    app = create_app(retry_after_s=3.0)
    app.state.rate_limit_creates = 1
    created = run(serve(app), recorded_sleep, lambda c: c.create_incident(OUTAGE, call("open")))
    assert created.created and len(app.state.incidents) == 1 and recorded_sleep.waits == [3.0]
    assert [r["method"] for r in app.state.requests] == ["GET", "POST", "GET", "POST"]


def test_a_create_still_rate_limited_when_its_retries_run_out_stays_retryable(
    serve: Serve, recorded_sleep: RecordedSleep
) -> None:
    app = create_app()
    app.state.rate_limit_creates = 10
    with pytest.raises(ConnectorError) as caught:
        run(serve(app), recorded_sleep, lambda c: c.create_incident(OUTAGE, call("open")), retries=1)
    assert caught.value.retryable and caught.value.status == 429 and recorded_sleep.waits == [1.0]
    assert app.state.incidents == {}


def test_a_timeout_is_retryable(serve: Serve, recorded_sleep: RecordedSleep) -> None:
    app = create_app(delay_s=1.0)
    with pytest.raises(ConnectorError, match="timed out") as caught:
        run(serve(app), recorded_sleep, lambda c: c.create_incident(OUTAGE, call("open")), timeout_s=0.2, retries=0)
    assert caught.value.retryable and caught.value.code == "timeout"


# -- credentials and check() --------------------------------------------------------------------------------------


def test_bad_credentials_are_permanent_and_check_reports_them(serve: Serve, recorded_sleep: RecordedSleep) -> None:
    app = create_app()

    async def scenario(connector: ServiceNowConnector) -> tuple[ConnectorError, dict[str, Any]]:
        with pytest.raises(ConnectorError) as caught:
            await connector.create_incident(OUTAGE, call("open"))
        return caught.value, await connector.check()

    error, checked = run(serve(app), recorded_sleep, scenario, config={"password": "wrong"})
    assert not error.retryable and error.status == 401
    assert "User Not Authenticated: Required to provide Auth information" in str(error)
    assert checked["ok"] is False and "401" in checked["detail"]
    assert recorded_sleep.waits == [] and app.state.incidents == {}


def test_check_reads_one_incident(serve: Serve, recorded_sleep: RecordedSleep) -> None:
    app = create_app()
    checked = run(serve(app), recorded_sleep, lambda c: c.check())
    assert checked == {"ok": True, "detail": "servicenow: the incident table is readable"}
    assert app.state.requests[-1]["query"]["sysparm_limit"] == "1"


def test_the_password_can_come_from_a_file_and_missing_settings_are_reported(
    serve: Serve, recorded_sleep: RecordedSleep, tmp_path: Path
) -> None:
    url = serve(create_app())
    password_file = tmp_path / "servicenow.password"
    password_file.write_text("secret\n", encoding="utf-8")
    from_file = {"password": None, "password_file": str(password_file)}
    assert run(url, recorded_sleep, lambda c: c.check(), config=from_file)["ok"] is True

    async def unconfigured(connector: ServiceNowConnector) -> tuple[dict[str, Any], ConnectorError]:
        with pytest.raises(ConnectorError) as caught:
            await connector.get_incident(GetIncident(sys_id=UNKNOWN), call("read"))
        return await connector.check(), caught.value

    checked, error = run(url, recorded_sleep, unconfigured, config={"username": None, "password": None})
    assert checked == {"ok": False, "detail": "servicenow: missing settings: username, password or password_file"}
    assert not error.retryable and "missing settings" in str(error)


# -- through the engine -------------------------------------------------------------------------------------------


def test_an_engine_call_creates_once_across_attempts(serve: Serve, recorded_sleep: RecordedSleep) -> None:
    app = create_app()

    async def scenario(connector: ServiceNowConnector) -> Any:
        operations = Operations()
        names = bind(operations, connector)
        params = {"short_description": "Disk full on db-3", "urgency": 1, "impact": 2}
        first = await operations.call("action", "servicenow.create_incident", params, call("ticket"))
        second = await operations.call("action", "servicenow.create_incident", params, call("ticket", attempt=2))
        with pytest.raises(OperationFailed, match="invalid input: urgency") as invalid:
            await operations.call("action", "servicenow.create_incident", {**params, "urgency": 5}, call("ticket"))
        return names, first, second, invalid.value

    names, first, second, invalid = run(serve(app), recorded_sleep, scenario)
    assert names == ["servicenow.create_incident", "servicenow.update_incident", "servicenow.get_incident"]
    assert first == {"sys_id": first["sys_id"], "number": "INC0010001", "created": True}
    assert second == {**first, "created": False}
    assert len(app.state.incidents) == 1 and not invalid.retryable


# -- the fake's Table API -------------------------------------------------------------------------------------------


def test_the_fake_pages_queries_and_links_references(serve: Serve) -> None:
    url = serve(create_app())
    with httpx.Client(base_url=url, auth=("admin", "secret")) as client:
        for number in range(5):
            body = {"short_description": f"incident {number}", "caller_id": "abc", "unknown_field": "ignored"}
            assert client.post("/api/now/table/incident", json=body).status_code == 201
        page = client.get(
            "/api/now/table/incident",
            params={"sysparm_query": "active=true^ORDERBYDESCnumber", "sysparm_limit": 2, "sysparm_offset": 2},
        )
        assert page.headers["X-Total-Count"] == "5"
        assert [r["number"] for r in page.json()["result"]] == ["INC0010003", "INC0010002"]
        links = {rel: href for href, rel in re.findall(r'<([^>]+)>;rel="(\w+)"', page.headers["Link"])}
        assert set(links) == {"first", "prev", "next", "last"}
        assert "sysparm_offset=4" in links["next"] and "sysparm_offset=0" in links["prev"]
        record = page.json()["result"][0]
        assert record["caller_id"] == {"link": f"{url}/api/now/table/sys_user/abc", "value": "abc"}
        assert "unknown_field" not in record and SYS_ID.match(record["sys_id"])
        one = client.get("/api/now/table/incident", params={"sysparm_query": "short_description=incident 4^nofield=1"})
        assert [r["number"] for r in one.json()["result"]] == ["INC0010005"]  # unknown fields are ignored
        unsupported = client.get("/api/now/table/incident", params={"sysparm_query": "priority<=2"})
        negative = client.get("/api/now/table/incident", params={"sysparm_offset": -1})
        assert unsupported.status_code == 400 and negative.status_code == 400
        assert negative.json() == {
            "error": {"message": "offset is -1", "detail": "Negative offset is not supported"},
            "status": "failure",
        }
        assert client.get("/api/now/table/problem").json()["error"]["message"] == "Invalid table problem"
        denied = httpx.get(f"{url}/api/now/table/incident", auth=("admin", "nope"))
        assert denied.status_code == 401 and denied.json()["status"] == "failure"


def test_error_messages_read_servicenows_error_body() -> None:
    body = {"error": {"message": "Invalid table problem", "detail": None}, "status": "failure"}
    assert servicenow_error_message(httpx.Response(400, json=body)) == "Invalid table problem"
    assert servicenow_error_message(httpx.Response(503, text="")) == "Service Unavailable"
