"""The connector SDK against a small fake over real HTTP: retries with backoff, Retry-After, permanent 4xx,
timeouts, the circuit breaker, the rate limit, idempotency headers, and binding operations to the engine."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from opsrail.connectors import (
    CircuitBreaker,
    Connector,
    ConnectorError,
    HttpPolicy,
    HttpTransport,
    LoopLocalClient,
    Model,
    OperationSpec,
    bind,
    retry_after_seconds,
)
from opsrail.engine import CallContext, OperationFailed, Operations
from tests.connectors.conftest import RecordedSleep


def flaky_app() -> FastAPI:
    app = FastAPI()
    app.state.seen = []
    app.state.script = []  # status codes to answer before succeeding

    @app.post("/things")
    async def things(request: Request) -> JSONResponse:
        app.state.seen.append(dict(request.headers))
        if app.state.script:
            status = app.state.script.pop(0)
            if status == "slow":
                await asyncio.sleep(1.0)
                status = 200
            else:
                headers = {"Retry-After": "2"} if status == 429 else {}
                return JSONResponse({"error": f"scripted {status}"}, status_code=status, headers=headers)
        return JSONResponse({"id": len(app.state.seen)})

    return app


def transport(url: str, sleep: RecordedSleep, **policy: Any) -> HttpTransport:
    return HttpTransport(
        "thing",
        LoopLocalClient(),
        url,
        headers={"Authorization": "Bearer s3cret"},
        policy=HttpPolicy(**{"retries": 3, "backoff_s": 0.1, **policy}),
        idempotency_header="Idempotency-Key",
        sleep=sleep,
    )


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_5xx_and_429_are_retried_honouring_retry_after(
    serve: Callable[[FastAPI], str], recorded_sleep: RecordedSleep
) -> None:
    app = flaky_app()
    app.state.script = [503, 429, 500]
    http = transport(serve(app), recorded_sleep)
    response = run(http.request("POST", "/things", json={}, idempotency_key="run-1:step"))
    assert response.json() == {"id": 4}
    assert len(recorded_sleep.waits) == 3 and recorded_sleep.waits[1] == 2.0  # the 429's Retry-After
    assert 0.05 <= recorded_sleep.waits[0] <= 0.1 and 0.1 <= recorded_sleep.waits[2] <= 0.4  # backoff with jitter
    assert {h["idempotency-key"] for h in app.state.seen} == {"run-1:step"}  # the same key on every attempt


def test_a_4xx_is_permanent_and_not_retried(serve: Callable[[FastAPI], str], recorded_sleep: RecordedSleep) -> None:
    app = flaky_app()
    app.state.script = [422]
    http = transport(serve(app), recorded_sleep)
    with pytest.raises(ConnectorError) as caught:
        run(http.request("POST", "/things", json={}))
    assert not caught.value.retryable and caught.value.status == 422 and "scripted 422" in str(caught.value)
    assert recorded_sleep.waits == [] and len(app.state.seen) == 1


def test_retries_run_out_and_the_error_stays_retryable(
    serve: Callable[[FastAPI], str], recorded_sleep: RecordedSleep
) -> None:
    app = flaky_app()
    app.state.script = [500] * 10
    http = transport(serve(app), recorded_sleep, retries=2)
    with pytest.raises(ConnectorError) as caught:
        run(http.request("POST", "/things"))
    assert caught.value.retryable and len(app.state.seen) == 3


def test_a_long_retry_after_is_left_to_the_engine(
    serve: Callable[[FastAPI], str], recorded_sleep: RecordedSleep
) -> None:
    app = flaky_app()
    app.state.script = [429]
    http = transport(serve(app), recorded_sleep, max_retry_after_s=1.0)
    with pytest.raises(ConnectorError) as caught:
        run(http.request("POST", "/things"))
    assert caught.value.retryable and caught.value.retry_after == 2.0 and recorded_sleep.waits == []


def test_a_timeout_is_retryable(serve: Callable[[FastAPI], str], recorded_sleep: RecordedSleep) -> None:
    app = flaky_app()
    app.state.script = ["slow"]
    http = transport(serve(app), recorded_sleep, timeout_s=0.2)
    assert run(http.request("POST", "/things")).status_code == 200  # timed out once, then answered
    assert len(recorded_sleep.waits) == 1
    app.state.script = ["slow"] * 5
    with pytest.raises(ConnectorError, match="timed out") as caught:
        run(transport(http.base_url, recorded_sleep, timeout_s=0.2, retries=0).request("POST", "/things"))
    assert caught.value.retryable


def test_the_breaker_opens_after_failures_and_half_opens_after_the_reset() -> None:
    now = [0.0]
    breaker = CircuitBreaker(3, 10.0, lambda: now[0])
    for _ in range(3):
        breaker.failure()
    assert breaker.state == "open" and not breaker.allow()
    now[0] = 10.5
    assert breaker.state == "half-open" and breaker.allow()
    breaker.failure()  # the trial failed: open again
    assert breaker.state == "open"
    now[0] = 21.0
    breaker.success()
    assert breaker.state == "closed"


def test_an_open_breaker_fails_fast(serve: Callable[[FastAPI], str], recorded_sleep: RecordedSleep) -> None:
    app = flaky_app()
    app.state.script = [500] * 20
    http = transport(serve(app), recorded_sleep, retries=0, breaker_failures=2)

    async def scenario() -> None:
        for _ in range(2):
            with pytest.raises(ConnectorError):
                await http.request("POST", "/things")
        sent = len(app.state.seen)
        with pytest.raises(ConnectorError, match="circuit open") as caught:
            await http.request("POST", "/things")
        assert caught.value.retryable and len(app.state.seen) == sent

    run(scenario())


def test_retry_after_reads_seconds_and_dates() -> None:
    from datetime import UTC, datetime

    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds("Mon, 30 Nov 2026 10:00:10 GMT", datetime(2026, 11, 30, 10, 0, tzinfo=UTC)) == 10.0
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


class Echo(Model):
    text: str
    times: int = 1


class Echoed(Model):
    text: str


class EchoConnector(Connector):
    name = "echo"
    summary = "repeats what it is told"

    def operations(self) -> list[OperationSpec]:
        async def say(arguments: Echo, call: CallContext) -> Echoed:
            if arguments.text == "boom":
                raise ConnectorError("echo: boom", retryable=True)
            return Echoed(text=arguments.text * arguments.times)

        return [OperationSpec("say", "say it", Echo, Echoed, say)]


def test_bound_operations_validate_their_input_and_report_each_call() -> None:
    operations = Operations()
    seen: list[tuple[str, str, str | None]] = []
    names = bind(operations, EchoConnector(), lambda name, call, outcome, error: seen.append((name, outcome, error)))
    assert names == ["echo.say"]
    call = CallContext("run-1", "step", 1, "run-1:step")
    assert run(operations.call("action", "echo.say", {"text": "ab", "times": 2}, call)) == {"text": "abab"}
    with pytest.raises(OperationFailed, match="invalid input: times") as caught:
        run(operations.call("action", "echo.say", {"text": "ab", "times": "many"}, call))
    assert not caught.value.retryable
    with pytest.raises(OperationFailed, match="invalid input: colour"):
        run(operations.call("action", "echo.say", {"text": "ab", "colour": "red"}, call))
    with pytest.raises(ConnectorError):
        run(operations.call("action", "echo.say", {"text": "boom"}, call))
    assert [(n, o) for n, o, _ in seen] == [
        ("echo.say", "ok"),
        ("echo.say", "failed"),
        ("echo.say", "failed"),
        ("echo.say", "retryable"),
    ]
