"""The ERPNext connector against the fake Frappe site over real HTTP: each operation, idempotency by lookup,
Frappe's errors (417 with the server's message, 404, 401/403), retries (429 with Retry-After, 500, a lost answer),
timeouts, the health check, and a call through the engine."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from fastapi import FastAPI

from opsrail.connectors import ConnectorError, HttpPolicy, LoopLocalClient, bind
from opsrail.connectors.erpnext import ERPNextConnector, frappe_error
from opsrail.engine import CallContext, OperationFailed, Operations
from opsrail.fakes.erpnext import COMPANY, USER, create_app
from tests.connectors.conftest import RecordedSleep

T = TypeVar("T")
Serve = Callable[[FastAPI], str]

INVOICE = "ACC-SINV-2026-00001"  # Acme Corp, 1200 EUR, submitted


def call(key: str = "run-1:credit") -> CallContext:
    run, _, step = key.partition(":")
    return CallContext(run, step, 1, key)


def run(
    url: str,
    sleep: RecordedSleep,
    scenario: Callable[[ERPNextConnector], Awaitable[T]],
    *,
    config: dict[str, Any] | None = None,
    **policy: Any,
) -> T:
    """Runs ``scenario`` with a connector to ``url`` inside one event loop, as an httpx client requires."""

    async def main() -> T:
        async with LoopLocalClient() as client:
            settings = {
                "base_url": url,
                "api_key": "key",
                "api_secret": "secret",
                "credit_note_account": "Sales Returns - OD",
                "company": COMPANY,
                **(config or {}),
            }
            connector = ERPNextConnector(
                settings, client, policy=HttpPolicy(**{"retries": 3, "backoff_s": 0.01, **policy}), sleep=sleep
            )
            return await scenario(connector)

    return asyncio.run(main())


def credit(**overrides: Any) -> dict[str, Any]:
    return {
        "customer": "Acme Corp",
        "company": COMPANY,
        "amount": "150.00",
        "currency": "EUR",
        "against_invoice": INVOICE,
        "remark": "Goodwill credit for the March outage",
        **overrides,
    }


def op(connector: ERPNextConnector, name: str) -> Callable[[Any, CallContext], Coroutine[Any, Any, Any]]:
    """The handler of one operation, called with its validated input model."""
    spec = next(s for s in connector.operations() if s.name == name)

    async def invoke(arguments: Any, context: CallContext) -> Any:
        return (await spec.handler(spec.input.model_validate(arguments), context)).model_dump(mode="json")

    return invoke


# -- operations ---------------------------------------------------------------------------------------------


def test_hold_and_release_an_invoice(serve: Serve, recorded_sleep: RecordedSleep) -> None:
    app = create_app()
    url = serve(app)

    async def scenario(erp: ERPNextConnector) -> tuple[Any, Any]:
        held = await op(erp, "hold_invoice")(
            {"invoice": INVOICE, "reason": "Disputed by the customer", "release_date": "2099-04-30"}, call()
        )
        stored = dict(app.state.docs["Sales Invoice"][INVOICE])
        released = await op(erp, "release_invoice")({"invoice": INVOICE}, call("run-1:release"))
        return (held, stored), released

    (held, stored), released = run(url, recorded_sleep, scenario)
    assert held == {"invoice": INVOICE, "on_hold": True}
    assert stored["on_hold"] == 1 and stored["hold_comment"] == "Disputed by the customer"
    assert stored["release_date"] == "2099-04-30"
    assert released == {"invoice": INVOICE, "on_hold": False}
    assert app.state.docs["Sales Invoice"][INVOICE]["on_hold"] == 0
    put = next(r for r in app.state.requests if r["method"] == "PUT")
    assert put["path"] == f"/api/resource/Sales Invoice/{INVOICE}"  # sent as Sales%20Invoice, decoded by the server


def test_a_hold_the_doctype_cannot_store_fails_instead_of_passing_silently(
    serve: Serve, recorded_sleep: RecordedSleep
) -> None:
    url = serve(create_app(hold_fields=False))  # stock ERPNext: Sales Invoice has no on_hold field
    with pytest.raises(ConnectorError, match="no on_hold field") as caught:
        run(url, recorded_sleep, lambda erp: op(erp, "hold_invoice")({"invoice": INVOICE, "reason": "x"}, call()))
    assert not caught.value.retryable and caught.value.code == "unsupported"


def test_a_credit_note_is_created_once_per_idempotency_key(serve: Serve, recorded_sleep: RecordedSleep) -> None:
    app = create_app()
    url = serve(app)

    async def scenario(erp: ERPNextConnector) -> list[Any]:
        create = op(erp, "create_credit_note")
        first = await create(credit(), call("run-1:credit"))
        again = await create(credit(), call("run-1:credit"))  # the engine retrying the same step
        other = await create(credit(amount="20", submit=True), call("run-2:credit"))
        return [first, again, other]

    first, again, other = run(url, recorded_sleep, scenario)
    assert first == again and first["docstatus"] == 0 and first["name"].startswith("ACC-JV-")
    assert other["name"] != first["name"] and other["docstatus"] == 1
    entries = app.state.docs["Journal Entry"]
    assert len(entries) == 2
    entry = entries[first["name"]]
    assert entry["voucher_type"] == "Credit Note" and entry["user_remark"].startswith("[opsrail:run-1:credit] Goodwill")
    receivable, returns = entry["accounts"]
    assert (receivable["account"], receivable["party"], receivable["credit_in_account_currency"]) == (
        "Debtors - OD",
        "Acme Corp",
        150.0,
    )
    assert (receivable["reference_type"], receivable["reference_name"]) == ("Sales Invoice", INVOICE)
    assert (returns["account"], returns["debit_in_account_currency"]) == ("Sales Returns - OD", 150.0)
    assert app.state.docs["Sales Invoice"][INVOICE]["outstanding_amount"] == 1180.0  # only the submitted one counts
    assert sum(1 for r in app.state.requests if r["method"] == "POST") == 2


def test_the_key_can_live_in_a_custom_field(serve: Serve, recorded_sleep: RecordedSleep) -> None:
    app = create_app(custom_fields={"Journal Entry": ["opsrail_key"], "Timesheet": ["opsrail_key"]})
    url = serve(app)

    async def scenario(erp: ERPNextConnector) -> tuple[Any, Any]:
        create = op(erp, "create_credit_note")
        return await create(credit(), call()), await create(credit(), call())

    first, again = run(url, recorded_sleep, scenario, config={"key_field": "opsrail_key"})
    assert first == again
    entry = app.state.docs["Journal Entry"][first["name"]]
    assert entry["opsrail_key"] == "run-1:credit" and entry["user_remark"] == "Goodwill credit for the March outage"
    lookups = [r["query"]["filters"] for r in app.state.requests if r["method"] == "GET" and "filters" in r["query"]]
    assert lookups[0] == '[["opsrail_key", "=", "run-1:credit"]]'


def test_a_lost_answer_to_a_create_is_found_not_repeated(serve: Serve, recorded_sleep: RecordedSleep) -> None:
    app = create_app(lose_first_creates=2)  # the first two creates are saved, then a proxy answers 504

    async def scenario(erp: ERPNextConnector) -> tuple[Any, Any]:
        project = await op(erp, "create_project")(
            {
                "project_name": "Acme onboarding",
                "customer": "Acme Corp",
                "expected_start_date": "2026-03-01",
                "expected_end_date": "2026-03-31",
            },
            call("run-1:project"),
        )
        timesheet = {
            "employee": "HR-EMP-00001",
            "project": project["project"],
            "activity_type": "Consulting",
            "hours": 2.5,
            "from_time": "2026-03-02T09:00:00",
            "description": "Incident review with the customer",
        }
        return project, await op(erp, "post_timesheet")(timesheet, call("run-1:hours"))

    project, posted = run(serve(app), recorded_sleep, scenario)
    assert list(app.state.docs["Project"]) == [project["project"]]
    assert list(app.state.docs["Timesheet"]) == [posted["name"]]
    assert sum(1 for r in app.state.requests if r["method"] == "POST") == 2  # each sent once, then found
    assert len(recorded_sleep.waits) == 2


def test_a_project_with_tasks_is_created_once_and_completed_on_retry(
    serve: Serve, recorded_sleep: RecordedSleep
) -> None:
    app = create_app()
    url = serve(app)
    project = {
        "project_name": "Acme onboarding",
        "customer": "Acme Corp",
        "expected_start_date": "2026-03-01",
        "expected_end_date": "2026-03-31",
    }
    tasks = [
        {"subject": "Kick-off", "exp_start_date": "2026-03-02", "exp_end_date": "2026-03-02"},
        {"subject": "Data migration", "exp_start_date": "2026-03-03", "exp_end_date": "2026-03-20"},
    ]

    async def scenario(erp: ERPNextConnector) -> list[Any]:
        create = op(erp, "create_project")
        partial = await create({**project, "tasks": tasks[:1]}, call("run-1:project"))  # as if cut short
        full = await create({**project, "tasks": tasks}, call("run-1:project"))
        again = await create({**project, "tasks": tasks}, call("run-1:project"))
        return [partial, full, again]

    partial, full, again = run(url, recorded_sleep, scenario)
    assert full == again and full["project"] == partial["project"] and full["project"].startswith("PROJ-")
    assert full["tasks"][0] == partial["tasks"][0] and len(set(full["tasks"])) == 2
    assert len(app.state.docs["Project"]) == 1 and len(app.state.docs["Task"]) == 2
    stored = app.state.docs["Project"][full["project"]]
    assert (stored["customer"], stored["company"], stored["expected_end_date"]) == ("Acme Corp", COMPANY, "2026-03-31")
    migration = app.state.docs["Task"][full["tasks"][1]]
    assert (migration["subject"], migration["project"], migration["exp_end_date"]) == (
        "Data migration",
        full["project"],
        "2026-03-20",
    )


def test_a_project_name_taken_by_another_customer_is_a_conflict(serve: Serve, recorded_sleep: RecordedSleep) -> None:
    app = create_app()
    project = {
        "project_name": "Onboarding",
        "customer": "Acme Corp",
        "expected_start_date": "2026-03-01",
        "expected_end_date": "2026-03-31",
    }

    async def scenario(erp: ERPNextConnector) -> None:
        await op(erp, "create_project")(project, call("run-1:project"))
        await op(erp, "create_project")({**project, "customer": "Globex Corporation"}, call("run-2:project"))

    with pytest.raises(ConnectorError, match=r"already exists .* for another customer, Acme Corp") as caught:
        run(serve(app), recorded_sleep, scenario)
    assert caught.value.code == "conflict" and not caught.value.retryable
    assert len(app.state.docs["Project"]) == 1


def test_a_timesheet_is_posted_once_per_key(serve: Serve, recorded_sleep: RecordedSleep) -> None:
    app = create_app()
    url = serve(app)

    async def scenario(erp: ERPNextConnector) -> list[Any]:
        project = await op(erp, "create_project")(
            {
                "project_name": "Acme support",
                "customer": "Acme Corp",
                "expected_start_date": "2026-03-01",
                "expected_end_date": "2026-12-31",
            },
            call("run-1:project"),
        )
        entry = {
            "employee": "HR-EMP-00001",
            "project": project["project"],
            "activity_type": "Consulting",
            "hours": 1.5,
            "from_time": "2026-03-02T09:00:00+00:00",
            "description": "Root-cause analysis",
        }
        post = op(erp, "post_timesheet")
        first = await post(entry, call("run-1:hours"))
        again = await post(entry, call("run-1:hours"))
        try:
            await post(entry, call("run-2:hours"))  # a different step logging the same hours
        except ConnectorError as exc:
            return [first, again, exc]
        return [first, again, None]

    first, again, overlap = run(url, recorded_sleep, scenario)
    assert first == again and list(app.state.docs["Timesheet"]) == [first["name"]]
    sheet = app.state.docs["Timesheet"][first["name"]]
    log = sheet["time_logs"][0]
    assert (log["from_time"], log["to_time"], log["hours"]) == ("2026-03-02 09:00:00", "2026-03-02 10:30:00", 1.5)
    assert sheet["note"].startswith("[opsrail:run-1:hours]") and sheet["total_hours"] == 1.5
    # Without the lookup a retry would have met ERPNext's own overlap check: a permanent failure, not the result.
    assert isinstance(overlap, ConnectorError) and overlap.status == 417 and not overlap.retryable
    assert "OverlapError" in str(overlap) and "is overlapping with" in str(overlap)


# -- errors -------------------------------------------------------------------------------------------------


def test_a_validation_error_is_permanent_and_carries_the_server_message(
    serve: Serve, recorded_sleep: RecordedSleep
) -> None:
    url = serve(create_app())
    with pytest.raises(ConnectorError) as unknown:
        run(url, recorded_sleep, lambda erp: op(erp, "create_credit_note")(credit(customer="Nobody Inc"), call()))
    assert unknown.value.status == 417 and not unknown.value.retryable
    assert "LinkValidationError: Could not find Row #1: Party: Nobody Inc" in str(unknown.value)
    with pytest.raises(ConnectorError) as too_much:
        run(url, recorded_sleep, lambda erp: op(erp, "create_credit_note")(credit(amount="5000"), call()))
    assert "cannot be more than the outstanding amount 1200.00" in str(too_much.value)
    with pytest.raises(ConnectorError, match="Party / Account does not match"):
        run(
            url,
            recorded_sleep,
            lambda erp: op(erp, "create_credit_note")(credit(customer="Globex Corporation"), call()),
        )
    assert recorded_sleep.waits == []


def test_a_missing_document_is_a_permanent_404(serve: Serve, recorded_sleep: RecordedSleep) -> None:
    url = serve(create_app())
    missing = "ACC-SINV-2026-09999"
    with pytest.raises(ConnectorError) as caught:
        run(url, recorded_sleep, lambda erp: op(erp, "hold_invoice")({"invoice": missing, "reason": "x"}, call()))
    assert caught.value.status == 404 and not caught.value.retryable
    assert f"DoesNotExistError: Sales Invoice {missing} not found" in str(caught.value)


def test_a_bad_token_is_permanent(serve: Serve, recorded_sleep: RecordedSleep) -> None:
    url = serve(create_app())
    with pytest.raises(ConnectorError) as caught:
        run(
            url,
            recorded_sleep,
            lambda erp: op(erp, "release_invoice")({"invoice": INVOICE}, call()),
            config={"api_secret": "wrong"},
        )
    assert caught.value.status == 401 and not caught.value.retryable and "AuthenticationError" in str(caught.value)
    assert run(url, recorded_sleep, lambda erp: erp.check(), config={"api_secret": "wrong"})["ok"] is False
    guest = httpx.get(f"{url}/api/resource/Sales Invoice")  # no token at all: the Guest user
    assert guest.status_code == 403 and guest.json()["exc_type"] == "PermissionError"


def test_429_is_retried_after_the_servers_retry_after(serve: Serve, recorded_sleep: RecordedSleep) -> None:
    app = create_app(rate_limit_first=2, retry_after_s=2)
    url = serve(app)
    held = run(url, recorded_sleep, lambda erp: op(erp, "hold_invoice")({"invoice": INVOICE, "reason": "x"}, call()))
    assert held["on_hold"] is True and recorded_sleep.waits == [2.0, 2.0] and app.state.calls == 3


def test_500_is_retried(serve: Serve, recorded_sleep: RecordedSleep) -> None:
    app = create_app(fail_first=2)
    url = serve(app)
    created = run(url, recorded_sleep, lambda erp: op(erp, "create_credit_note")(credit(), call()))
    assert created["name"] in app.state.docs["Journal Entry"] and len(recorded_sleep.waits) == 2
    with pytest.raises(ConnectorError) as caught:
        run(
            serve(create_app(fail_first=10)),
            recorded_sleep,
            lambda erp: op(erp, "hold_invoice")({"invoice": INVOICE, "reason": "x"}, call()),
            retries=1,
        )
    assert caught.value.retryable and caught.value.status == 500 and "OperationalError" in str(caught.value)


def test_a_timeout_is_retryable(serve: Serve, recorded_sleep: RecordedSleep) -> None:
    url = serve(create_app(delay_s=0.5))
    with pytest.raises(ConnectorError, match="timed out") as caught:
        run(
            url,
            recorded_sleep,
            lambda erp: op(erp, "hold_invoice")({"invoice": INVOICE, "reason": "x"}, call()),
            timeout_s=0.1,
            retries=0,
        )
    assert caught.value.retryable and caught.value.code == "timeout"


def test_check_reports_the_logged_in_user(serve: Serve, recorded_sleep: RecordedSleep) -> None:
    url = serve(create_app())
    assert run(url, recorded_sleep, lambda erp: erp.check()) == {"ok": True, "detail": f"logged in as {USER}"}
    down = run("http://127.0.0.1:9", recorded_sleep, lambda erp: erp.check(), retries=0)
    assert down["ok"] is False and "failed" in down["detail"]


def test_a_call_through_the_engine(serve: Serve, recorded_sleep: RecordedSleep) -> None:
    app = create_app()
    url = serve(app)

    async def scenario(erp: ERPNextConnector) -> tuple[list[str], Any]:
        operations = Operations()
        names = bind(operations, erp)
        result = await operations.call("action", "erpnext.create_credit_note", credit(), call())
        with pytest.raises(OperationFailed, match="invalid input: amount") as caught:
            await operations.call("action", "erpnext.create_credit_note", credit(amount="-5"), call())
        assert not caught.value.retryable
        return names, result

    names, result = run(url, recorded_sleep, scenario)
    assert names == [
        "erpnext.hold_invoice",
        "erpnext.release_invoice",
        "erpnext.create_credit_note",
        "erpnext.create_project",
        "erpnext.post_timesheet",
    ]
    assert result == {"name": next(iter(app.state.docs["Journal Entry"])), "docstatus": 0}


# -- settings, the error reader and the fake's list API -----------------------------------------------------------


def test_settings_that_cannot_work_are_reported_and_refused(tmp_path: Path, recorded_sleep: RecordedSleep) -> None:
    async def scenario() -> None:
        async with LoopLocalClient() as client:
            for config, problem in (
                ({"base_url": "https://erp.example.com", "api_key": "key"}, "missing settings: api_secret"),
                ({"base_url": "erp.example.com", "api_key": "k", "api_secret": "s"}, "must be an https URL"),
                ({"base_url": "http://erp.example.com", "api_key": "k", "api_secret": "s"}, "must use https"),
                ({"base_url": "https://erp.example.com", "api_key": "k", "api_secret_file": "/nonexistent"}, "file"),
            ):
                erp = ERPNextConnector(config, client, sleep=recorded_sleep)  # built all the same
                assert (await erp.check())["ok"] is False and problem in (await erp.check())["detail"]
                with pytest.raises(ConnectorError, match=problem) as caught:
                    await op(erp, "hold_invoice")({"invoice": INVOICE, "reason": "x"}, call())
                assert caught.value.code == "config" and not caught.value.retryable
            secret_file = tmp_path / "erpnext_secret"
            secret_file.write_text("s3cret\n", encoding="utf-8")
            erp = ERPNextConnector(
                {"base_url": "https://erp.example.com/", "api_key": "k", "api_secret_file": str(secret_file)}, client
            )
            assert erp.problem is None and erp.http.headers["Authorization"] == "token k:s3cret"
            assert erp.http.base_url == "https://erp.example.com"

    asyncio.run(scenario())


def test_the_error_reader_prefers_the_message_frappe_shows_users() -> None:
    request = httpx.Request("PUT", "https://erp.example.com/api/resource/Sales%20Invoice/X")
    body = {
        "exc_type": "ValidationError",
        "exception": "frappe.exceptions.ValidationError: Release date must be in the future",
        "_server_messages": '["{\\"message\\": \\"Release date must be <b>in the future</b>\\"}"]',
    }
    assert frappe_error(httpx.Response(417, json=body, request=request)) == (
        "ValidationError: Release date must be in the future"
    )
    del body["_server_messages"]
    assert frappe_error(httpx.Response(417, json=body, request=request)) == (
        "ValidationError: Release date must be in the future"
    )
    assert frappe_error(httpx.Response(502, text="<h1>Bad gateway</h1>", request=request)) == "<h1>Bad gateway</h1>"


def test_the_fake_filters_selects_fields_and_pages(serve: Serve) -> None:
    url = serve(create_app())
    headers = {"Authorization": "token key:secret"}

    def listing(**params: str) -> Any:
        response = httpx.get(f"{url}/api/resource/Sales Invoice", params=params, headers=headers)
        return response.status_code, response.json()

    assert listing(filters='[["customer", "like", "acme%"]]', fields='["name", "grand_total"]', order_by="name asc")[
        1
    ] == {"data": [{"name": INVOICE, "grand_total": 1200.0}, {"name": "ACC-SINV-2026-00003", "grand_total": 80.0}]}
    assert listing(filters='{"docstatus": 1}', order_by="name asc", limit_start="1", limit_page_length="1")[1] == {
        "data": [{"name": "ACC-SINV-2026-00002"}]
    }
    assert len(listing(filters='[["grand_total", ">", 100]]')[1]["data"]) == 2
    status, body = listing(filters='[["colour", "=", "red"]]')
    assert status == 417 and body["exc_type"] == "DataError"
    journal = httpx.get(f"{url}/api/resource/Journal Entry", headers=headers)
    assert journal.json() == {"data": []}
