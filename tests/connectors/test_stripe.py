"""The Stripe connector against the fake Stripe API over real HTTP: form-encoded bodies, idempotency keys and
replays, permanent and retryable errors, Retry-After, timeouts, credentials, ``check()`` and a call through the
engine. Each scenario runs in one ``asyncio.run`` because an ``httpx.AsyncClient`` belongs to one event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from fastapi import FastAPI

from opsrail.connectors import ConnectorError, HttpPolicy, LoopLocalClient, bind
from opsrail.connectors.stripe import (
    CollectionState,
    CreateCreditNote,
    CreditNoteLine,
    PauseCollection,
    ResumeCollection,
    StripeConnector,
    form_encode,
    stripe_error_message,
    stripe_idempotency_key,
)
from opsrail.engine import CallContext, OperationFailed, Operations
from opsrail.fakes.stripe import create_app
from tests.connectors.conftest import RecordedSleep

T = TypeVar("T")
Serve = Callable[[FastAPI], str]


def call(step: str, attempt: int = 1) -> CallContext:
    return CallContext("run-1", step, attempt, f"run-1:{step}")


def run(
    url: str,
    sleep: RecordedSleep,
    scenario: Callable[[StripeConnector], Awaitable[T]],
    *,
    config: dict[str, Any] | None = None,
    **policy: Any,
) -> T:
    """Runs ``scenario`` with a connector to ``url`` on a client that lives in this one event loop."""

    async def main() -> T:
        async with LoopLocalClient() as client:
            connector = StripeConnector(
                {"base_url": url, "api_key": "sk_test_fake", **(config or {})},
                client,
                policy=HttpPolicy(**{"retries": 3, "backoff_s": 0.01, **policy}),
                sleep=sleep,
            )
            return await scenario(connector)

    return asyncio.run(main())


CREDIT = CreateCreditNote(invoice="in_123", amount=2500, reason="order_change", memo="Late delivery")


# -- operations -------------------------------------------------------------------------------------------------


def test_pause_collection_sends_nested_form_fields_and_the_idempotency_key(
    serve: Serve, recorded_sleep: RecordedSleep
) -> None:
    app = create_app()
    resumes = datetime(2030, 1, 1, tzinfo=UTC)
    arguments = PauseCollection(subscription="sub_123", behavior="void", resumes_at=resumes)
    result = run(serve(app), recorded_sleep, lambda c: c.pause_collection(arguments, call("pause")))
    assert result == CollectionState(subscription="sub_123", paused=True, behavior="void", resumes_at=resumes)
    sent = app.state.requests[-1]
    assert sent["path"] == "/v1/subscriptions/sub_123" and sent["idempotency_key"] == "run-1:pause"
    assert sent["params"] == {"pause_collection": {"behavior": "void", "resumes_at": str(int(resumes.timestamp()))}}
    assert app.state.subscriptions["sub_123"]["pause_collection"] == {
        "behavior": "void",
        "resumes_at": int(resumes.timestamp()),
    }


def test_the_default_behaviour_keeps_invoices_as_drafts_and_resume_unsets_the_pause(
    serve: Serve, recorded_sleep: RecordedSleep
) -> None:
    app = create_app()

    async def scenario(connector: StripeConnector) -> tuple[CollectionState, CollectionState]:
        paused = await connector.pause_collection(PauseCollection(subscription="sub_123"), call("pause"))
        resumed = await connector.resume_collection(ResumeCollection(subscription="sub_123"), call("resume"))
        return paused, resumed

    paused, resumed = run(serve(app), recorded_sleep, scenario)
    assert paused.paused and paused.behavior == "keep_as_draft" and paused.resumes_at is None
    assert resumed == CollectionState(subscription="sub_123", paused=False)
    assert app.state.requests[-1]["params"] == {"pause_collection": ""}  # Stripe's way to unset a field
    assert app.state.subscriptions["sub_123"]["pause_collection"] is None


def test_a_credit_note_for_an_amount_lowers_what_the_invoice_still_owes(
    serve: Serve, recorded_sleep: RecordedSleep
) -> None:
    app = create_app()
    issued = run(serve(app), recorded_sleep, lambda c: c.create_credit_note(CREDIT, call("credit")))
    assert issued.id.startswith("cn_") and issued.status == "issued" and issued.amount == 2500
    assert app.state.requests[-1]["params"] == {
        "invoice": "in_123",
        "amount": "2500",
        "reason": "order_change",
        "memo": "Late delivery",
    }
    note = app.state.credit_notes[issued.id]
    assert note["object"] == "credit_note" and note["type"] == "pre_payment" and note["reason"] == "order_change"
    assert app.state.invoices["in_123"]["amount_remaining"] == 7500


def test_a_credit_note_for_lines_sends_indexed_nested_fields(serve: Serve, recorded_sleep: RecordedSleep) -> None:
    app = create_app()
    arguments = CreateCreditNote(
        invoice="in_123",
        lines=[
            CreditNoteLine(type="invoice_line_item", invoice_line_item="il_123", amount=1000),
            CreditNoteLine(type="custom_line_item", unit_amount=500, quantity=2, description="Goodwill"),
        ],
    )
    issued = run(serve(app), recorded_sleep, lambda c: c.create_credit_note(arguments, call("credit")))
    assert issued.amount == 2000
    assert app.state.requests[-1]["params"]["lines"] == [
        {"type": "invoice_line_item", "invoice_line_item": "il_123", "amount": "1000"},
        {"type": "custom_line_item", "quantity": "2", "unit_amount": "500", "description": "Goodwill"},
    ]
    assert [line["amount"] for line in app.state.credit_notes[issued.id]["lines"]["data"]] == [1000, 1000]


def test_a_paid_invoice_needs_the_credit_settled_outside_it(serve: Serve, recorded_sleep: RecordedSleep) -> None:
    app = create_app()

    async def scenario(connector: StripeConnector) -> Any:
        with pytest.raises(ConnectorError, match=r"must equal .*\(param amount\)") as refused:
            await connector.create_credit_note(CreateCreditNote(invoice="in_456", amount=1000), call("a"))
        settled = CreateCreditNote(invoice="in_456", amount=1000, out_of_band_amount=1000)
        return refused.value, await connector.create_credit_note(settled, call("b"))

    refused, issued = run(serve(app), recorded_sleep, scenario)
    assert not refused.retryable and refused.status == 400
    assert app.state.credit_notes[issued.id]["type"] == "post_payment"


# -- idempotency ------------------------------------------------------------------------------------------------


def test_the_same_key_gives_one_credit_note_and_other_parameters_are_refused(
    serve: Serve, recorded_sleep: RecordedSleep
) -> None:
    app = create_app()

    async def scenario(connector: StripeConnector) -> Any:
        first = await connector.create_credit_note(CREDIT, call("credit"))
        again = await connector.create_credit_note(CREDIT, call("credit", attempt=2))  # the step retried
        with pytest.raises(ConnectorError) as refused:
            await connector.create_credit_note(CREDIT.model_copy(update={"amount": 3000}), call("credit"))
        return first, again, refused.value

    first, again, refused = run(serve(app), recorded_sleep, scenario)
    assert again == first and len(app.state.credit_notes) == 1 and app.state.replays == 1
    assert app.state.invoices["in_123"]["amount_remaining"] == 7500  # credited once
    assert not refused.retryable and refused.status == 400
    assert "idempotency_error" in str(refused) and "same parameters" in str(refused)
    assert recorded_sleep.waits == []


def test_a_retry_while_the_first_request_runs_is_retryable_and_later_gets_the_saved_answer(
    serve: Serve, recorded_sleep: RecordedSleep
) -> None:
    app = create_app(delay_s=0.6)

    async def scenario(connector: StripeConnector) -> Any:
        with pytest.raises(ConnectorError) as timed_out:
            await connector.create_credit_note(CREDIT, call("credit"))
        with pytest.raises(ConnectorError) as in_progress:
            await connector.create_credit_note(CREDIT, call("credit", attempt=2))
        await asyncio.sleep(1.0)  # the first request finishes on the server although its caller gave up
        return timed_out.value, in_progress.value, await connector.create_credit_note(CREDIT, call("credit", 3))

    timed_out, in_progress, issued = run(serve(app), recorded_sleep, scenario, timeout_s=0.2, retries=0)
    assert timed_out.retryable and timed_out.code == "timeout"
    assert in_progress.retryable and in_progress.status == 409 and "in progress" in str(in_progress)
    assert list(app.state.credit_notes) == [issued.id] and app.state.replays == 1


def test_long_engine_keys_are_shortened_to_what_stripe_accepts() -> None:
    assert stripe_idempotency_key("run-1:step") == "run-1:step"
    long = stripe_idempotency_key("r" * 300)
    assert len(long) <= 255 and long == stripe_idempotency_key("r" * 300) != stripe_idempotency_key("r" * 301)


# -- errors, retries and timeouts ---------------------------------------------------------------------------------


def test_a_4xx_is_permanent_not_retried_and_explained_by_stripes_error_body(
    serve: Serve, recorded_sleep: RecordedSleep
) -> None:
    app = create_app()

    async def scenario(connector: StripeConnector) -> tuple[ConnectorError, ConnectorError]:
        with pytest.raises(ConnectorError) as too_much:
            await connector.create_credit_note(CreateCreditNote(invoice="in_123", amount=12000), call("a"))
        with pytest.raises(ConnectorError) as missing:
            await connector.pause_collection(PauseCollection(subscription="sub_999"), call("b"))
        return too_much.value, missing.value

    too_much, missing = run(serve(app), recorded_sleep, scenario)
    assert not too_much.retryable and too_much.status == 400
    assert "invalid_request_error: The credit note total (12000) exceeds" in str(too_much)
    assert "(param amount)" in str(too_much) and "[request req_" in str(too_much)
    assert not missing.retryable and missing.status == 404
    assert "resource_missing: No such subscription: 'sub_999'" in str(missing)
    assert len(app.state.requests) == 2 and recorded_sleep.waits == []
    assert app.state.credit_notes == {}


def test_5xx_is_retried_with_the_same_key_then_succeeds_once(serve: Serve, recorded_sleep: RecordedSleep) -> None:
    app = create_app(fail_first=2)
    issued = run(serve(app), recorded_sleep, lambda c: c.create_credit_note(CREDIT, call("credit")))
    assert issued.amount == 2500 and len(app.state.credit_notes) == 1
    assert len(recorded_sleep.waits) == 2
    assert [r["idempotency_key"] for r in app.state.requests] == ["run-1:credit"] * 3


def test_429_is_retried_after_the_retry_after_it_names(serve: Serve, recorded_sleep: RecordedSleep) -> None:
    app = create_app(rate_limit_first=1, retry_after_s=2.0)
    result = run(
        serve(app), recorded_sleep, lambda c: c.pause_collection(PauseCollection(subscription="sub_123"), call("p"))
    )
    assert result.paused and recorded_sleep.waits == [2.0]


def test_rate_limits_that_outlast_the_calls_retries_stay_retryable(serve: Serve, recorded_sleep: RecordedSleep) -> None:
    app = create_app(rate_limit_first=10)
    with pytest.raises(ConnectorError, match="rate_limit: Request rate limit exceeded") as caught:
        run(serve(app), recorded_sleep, lambda c: c.create_credit_note(CREDIT, call("credit")), retries=2)
    assert caught.value.retryable and caught.value.status == 429 and caught.value.retry_after == 1.0
    assert recorded_sleep.waits == [1.0, 1.0] and app.state.credit_notes == {}


def test_a_timeout_is_retryable(serve: Serve, recorded_sleep: RecordedSleep) -> None:
    app = create_app(delay_s=1.0)
    with pytest.raises(ConnectorError, match="timed out") as caught:
        run(serve(app), recorded_sleep, lambda c: c.create_credit_note(CREDIT, call("c")), timeout_s=0.2, retries=0)
    assert caught.value.retryable and caught.value.code == "timeout"


# -- credentials and check() --------------------------------------------------------------------------------------


def test_bad_credentials_are_permanent_and_check_reports_them(serve: Serve, recorded_sleep: RecordedSleep) -> None:
    app = create_app()

    async def scenario(connector: StripeConnector) -> tuple[ConnectorError, dict[str, Any]]:
        with pytest.raises(ConnectorError) as caught:
            await connector.create_credit_note(CREDIT, call("credit"))
        return caught.value, await connector.check()

    error, checked = run(serve(app), recorded_sleep, scenario, config={"api_key": "sk_test_wrong"})
    assert not error.retryable and error.status == 401 and "Invalid API Key provided" in str(error)
    assert "sk_test_wrong" not in str(error)
    assert checked["ok"] is False and "401" in checked["detail"]
    assert recorded_sleep.waits == [] and app.state.credit_notes == {}


def test_check_reads_the_balance(serve: Serve, recorded_sleep: RecordedSleep) -> None:
    app = create_app()
    assert run(serve(app), recorded_sleep, lambda c: c.check()) == {
        "ok": True,
        "detail": "stripe: authenticated (test mode)",
    }
    assert app.state.requests[-1]["path"] == "/v1/balance"


def test_the_key_can_come_from_a_file_and_its_absence_is_reported(
    serve: Serve, recorded_sleep: RecordedSleep, tmp_path: Path
) -> None:
    url = serve(create_app())
    key_file = tmp_path / "stripe.key"
    key_file.write_text("sk_test_fake\n", encoding="utf-8")
    from_file = {"api_key": None, "api_key_file": str(key_file)}
    assert run(url, recorded_sleep, lambda c: c.check(), config=from_file)["ok"] is True

    async def without_key(connector: StripeConnector) -> tuple[dict[str, Any], ConnectorError]:
        with pytest.raises(ConnectorError) as caught:
            await connector.pause_collection(PauseCollection(subscription="sub_123"), call("p"))
        return await connector.check(), caught.value

    checked, error = run(url, recorded_sleep, without_key, config={"api_key": None})
    assert checked == {"ok": False, "detail": "stripe: no API key; set api_key or api_key_file"}
    assert not error.retryable and "no API key" in str(error)
    unreadable = {"api_key": None, "api_key_file": str(tmp_path / "missing.key")}
    assert "cannot read the secret file" in run(url, recorded_sleep, lambda c: c.check(), config=unreadable)["detail"]


# -- through the engine -------------------------------------------------------------------------------------------


def test_an_engine_call_validates_its_input_and_issues_the_credit_note(
    serve: Serve, recorded_sleep: RecordedSleep
) -> None:
    app = create_app()

    async def scenario(connector: StripeConnector) -> Any:
        operations = Operations()
        names = bind(operations, connector)
        context = CallContext("run-7", "refund", 1, "run-7:refund")
        params = {"invoice": "in_123", "amount": 1500, "reason": "product_unsatisfactory", "memo": "Sorry"}
        result = await operations.call("action", "stripe.create_credit_note", params, context)
        with pytest.raises(OperationFailed, match="invalid input") as invalid:
            await operations.call(
                "action", "stripe.create_credit_note", {**params, "lines": [{"type": "custom_line_item"}]}, context
            )
        return names, result, invalid.value

    names, result, invalid = run(serve(app), recorded_sleep, scenario)
    assert names == ["stripe.pause_collection", "stripe.resume_collection", "stripe.create_credit_note"]
    assert result == {"id": result["id"], "status": "issued", "amount": 1500}
    assert app.state.requests[-1]["idempotency_key"] == "run-7:refund" and len(app.state.requests) == 1
    assert not invalid.retryable


# -- wire format --------------------------------------------------------------------------------------------------


def test_form_encoding_nests_with_brackets() -> None:
    moment = datetime(2030, 1, 1)  # naive: taken as UTC
    assert form_encode(
        {
            "pause_collection": {"behavior": "void", "resumes_at": moment},
            "lines": [{"type": "custom_line_item", "unit_amount": 5}],
            "metadata": {"ticket": "T-1", "skip": None},
            "flag": True,
            "cleared": "",
            "gone": None,
        }
    ) == {
        "pause_collection[behavior]": "void",
        "pause_collection[resumes_at]": str(int(moment.replace(tzinfo=UTC).timestamp())),
        "lines[0][type]": "custom_line_item",
        "lines[0][unit_amount]": "5",
        "metadata[ticket]": "T-1",
        "flag": "true",
        "cleared": "",
    }


def test_error_messages_read_stripes_error_body() -> None:
    body = {"error": {"type": "card_error", "code": "card_declined", "message": "Your card was declined."}}
    response = httpx.Response(402, json=body, headers={"Request-Id": "req_1"})
    assert stripe_error_message(response) == "card_error/card_declined: Your card was declined. [request req_1]"
    assert stripe_error_message(httpx.Response(502, text="<html>Bad gateway</html>")) == "<html>Bad gateway</html>"
