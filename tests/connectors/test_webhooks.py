"""Outbound webhooks against the fake receiver over real HTTP: signed deliveries, the signature check, named
endpoints only, retries (500, timeouts) with a stable delivery id the receiver dedupes on, and permanent 4xx/410."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from fastapi import FastAPI

from opsrail.connectors import ConnectorError, HttpPolicy, LoopLocalClient, bind
from opsrail.connectors.webhooks import WebhookConnector, WebhookPost, delivery_id, sign, verify_signature
from opsrail.engine import CallContext, OperationFailed, Operations
from opsrail.fakes.webhook_receiver import create_app
from tests.connectors.conftest import RecordedSleep

T = TypeVar("T")
Serve = Callable[[FastAPI], str]
SECRET = "whsec_test"
EVENT = {"endpoint": "billing", "event_type": "invoice.held", "payload": {"invoice": "ACC-SINV-2026-00001"}}


def call(key: str = "run-1:notify") -> CallContext:
    run, _, step = key.partition(":")
    return CallContext(run, step, 1, key)


def run(
    url: str,
    sleep: RecordedSleep,
    scenario: Callable[[WebhookConnector], Awaitable[T]],
    *,
    secret: str = SECRET,
    **policy: Any,
) -> T:
    """Runs ``scenario`` with a connector whose ``billing`` endpoint is ``url`` inside one event loop."""

    async def main() -> T:
        async with LoopLocalClient() as client:
            connector = WebhookConnector(
                {"endpoints": {"billing": {"url": url, "secret": secret}}},
                client,
                policy=HttpPolicy(**{"retries": 3, "backoff_s": 0.01, **policy}),
                sleep=sleep,
            )
            return await scenario(connector)

    return asyncio.run(main())


async def post(hooks: WebhookConnector, key: str = "run-1:notify", **event: Any) -> dict[str, Any]:
    delivered = await hooks.post(WebhookPost.model_validate({**EVENT, **event}), call(key))
    return delivered.model_dump()


def test_a_signed_delivery_is_accepted(serve: Serve, recorded_sleep: RecordedSleep) -> None:
    app = create_app(secret=SECRET)
    url = f"{serve(app)}/hooks/opsrail?tenant=7"
    assert run(url, recorded_sleep, post) == {"status": 200, "delivery_id": delivery_id("run-1:notify")}
    [delivery] = app.state.deliveries
    assert delivery["id"] == delivery_id("run-1:notify") and delivery["type"] == "invoice.held"
    assert delivery["data"] == {"invoice": "ACC-SINV-2026-00001"} and delivery["created"].endswith("Z")
    assert (delivery["path"], delivery["query"]) == ("/hooks/opsrail", {"tenant": "7"})
    assert delivery["headers"]["opsrail-delivery"] == delivery["id"]
    assert delivery["headers"]["opsrail-signature"].startswith("t=")
    assert recorded_sleep.waits == []


def test_the_signature_verifies_and_tampering_or_age_does_not() -> None:
    body = json.dumps({"id": "dlv_1", "type": "invoice.held", "data": {"amount": 150}}).encode()
    now = time.time()
    header = sign(body, SECRET, int(now))
    assert verify_signature(header, body, SECRET, now)
    assert not verify_signature(header, body.replace(b"150", b"999"), SECRET, now)  # tampered body
    assert not verify_signature(header, body, "whsec_other", now)  # wrong secret
    old = sign(body, SECRET, int(now) - 301)
    assert not verify_signature(old, body, SECRET, now)  # replayed too late
    assert verify_signature(old, body, SECRET, now, tolerance_s=600)
    rotated = f"{header},v1={'0' * 64}"  # a second signature, as during a rotation
    assert verify_signature(rotated, body, SECRET, now)
    for malformed in ("", "v1=abc", f"t=soon,v1={'0' * 64}", "t=1,t=2,v1=00", "nonsense"):
        assert not verify_signature(malformed, body, SECRET, now)


def test_an_unknown_endpoint_is_a_permanent_error(serve: Serve, recorded_sleep: RecordedSleep) -> None:
    app = create_app()
    url = serve(app)

    async def scenario(hooks: WebhookConnector) -> None:
        operations = Operations()
        assert bind(operations, hooks) == ["webhook.post"]
        with pytest.raises(OperationFailed, match=r"no endpoint named 'https://evil\.example'") as caught:
            await operations.call("action", "webhook.post", {**EVENT, "endpoint": "https://evil.example"}, call())
        assert not caught.value.retryable and isinstance(caught.value, ConnectorError)
        assert caught.value.code == "unknown_endpoint"
        with pytest.raises(OperationFailed, match="invalid input: url"):
            await operations.call("action", "webhook.post", {**EVENT, "url": "https://evil.example"}, call())
        assert await operations.call("action", "webhook.post", EVENT, call()) == {
            "status": 200,
            "delivery_id": delivery_id("run-1:notify"),
        }

    run(url, recorded_sleep, scenario)
    assert len(app.state.attempts) == 1


def test_a_500_is_retried_with_the_same_delivery_id(serve: Serve, recorded_sleep: RecordedSleep) -> None:
    app = create_app(fail_first=2)
    assert run(serve(app), recorded_sleep, post)["status"] == 200
    assert [a["status"] for a in app.state.attempts] == [500, 500, 200]
    assert {a["id"] for a in app.state.attempts} == {delivery_id("run-1:notify")}
    assert len(app.state.deliveries) == 1 and len(recorded_sleep.waits) == 2


def test_a_redelivery_with_the_same_key_is_stored_once(serve: Serve, recorded_sleep: RecordedSleep) -> None:
    app = create_app()
    url = serve(app)

    async def scenario(hooks: WebhookConnector) -> list[dict[str, Any]]:
        # The engine retrying the step (its answer lost), then another run's step.
        return [await post(hooks), await post(hooks), await post(hooks, key="run-2:notify")]

    first, again, other = run(url, recorded_sleep, scenario)
    assert first == again and other["delivery_id"] != first["delivery_id"]
    assert [d["id"] for d in app.state.deliveries] == [first["delivery_id"], other["delivery_id"]]
    assert len(app.state.attempts) == 3


def test_410_gone_is_permanent(serve: Serve, recorded_sleep: RecordedSleep) -> None:
    app = create_app(status_after=410)
    with pytest.raises(ConnectorError, match="remove 'billing'") as caught:
        run(serve(app), recorded_sleep, post)
    assert not caught.value.retryable and caught.value.status == 410 and caught.value.code == "gone"
    assert len(app.state.attempts) == 1 and recorded_sleep.waits == []


def test_other_4xx_are_permanent(serve: Serve, recorded_sleep: RecordedSleep) -> None:
    app = create_app(secret="whsec_the_receivers")  # the settings hold another secret: 400 invalid signature
    with pytest.raises(ConnectorError, match="invalid signature") as caught:
        run(serve(app), recorded_sleep, post)
    assert not caught.value.retryable and caught.value.status == 400 and len(app.state.attempts) == 1


def test_a_redirect_is_not_followed(serve: Serve, recorded_sleep: RecordedSleep) -> None:
    app = create_app(status_after=308)
    with pytest.raises(ConnectorError, match="redirects are not followed") as caught:
        run(serve(app), recorded_sleep, post)
    assert not caught.value.retryable and caught.value.status == 308 and app.state.deliveries == []


def test_a_timeout_is_retryable(serve: Serve, recorded_sleep: RecordedSleep) -> None:
    app = create_app(delay_s=0.5)
    with pytest.raises(ConnectorError, match="timed out") as caught:
        run(serve(app), recorded_sleep, post, timeout_s=0.1, retries=1)
    assert caught.value.retryable and caught.value.code == "timeout" and len(recorded_sleep.waits) == 1


def test_endpoints_that_cannot_work_are_reported_and_refused(tmp_path: Path, recorded_sleep: RecordedSleep) -> None:
    secret_file = tmp_path / "hook_secret"
    secret_file.write_text("whsec_from_file\n", encoding="utf-8")
    endpoints = {
        "ftp": {"url": "ftp://example.com", "secret": "s"},
        "creds": {"url": "https://user:pw@example.com/hook", "secret": "s"},
        "clear": {"url": "http://hooks.example.com/hook", "secret": "s"},
        "nosecret": {"url": "https://example.com/hook"},
        "good": {"url": "https://x.example/in", "secret_file": str(secret_file)},
    }

    async def scenario() -> None:
        async with LoopLocalClient() as client:
            hooks = WebhookConnector({"endpoints": endpoints}, client, sleep=recorded_sleep)  # built all the same
            assert hooks.endpoints == ["good"]
            report = await hooks.check()
            assert report["ok"] is False
            for problem in ("'ftp' needs an https url", "without credentials", "must use https", "needs a secret"):
                assert problem in report["detail"]
            with pytest.raises(ConnectorError, match="'clear' must use https") as caught:
                await post(hooks, endpoint="clear")
            assert caught.value.code == "config" and not caught.value.retryable
            empty = WebhookConnector({}, client)
            assert await empty.check() == {"ok": False, "detail": "webhook: no endpoints are configured"}
            with pytest.raises(ConnectorError, match="no endpoints are configured"):
                await post(empty)
            fine = WebhookConnector({"endpoints": {"good": endpoints["good"]}}, client)
            assert await fine.check() == {"ok": True, "detail": "endpoints: good"}

    asyncio.run(scenario())


def test_a_payload_that_is_not_json_is_refused(recorded_sleep: RecordedSleep) -> None:
    with pytest.raises(ConnectorError, match="not plain JSON") as caught:
        run("http://127.0.0.1:9/hook", recorded_sleep, lambda hooks: post(hooks, payload={"x": float("nan")}))
    assert not caught.value.retryable
