"""The client connectors send through (``LoopLocalClient``: httpx's types, aiohttp's connections), against a real
server on a port: what it sends, how it authenticates, how failures surface as httpx's exceptions, and that its
connections end with their event loop."""

from __future__ import annotations

import asyncio
import gc
import gzip
import hashlib
import hmac
import logging
import socket
import threading
import urllib.parse
import warnings
from collections.abc import Callable, Generator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response

from opsrail.connectors import ConnectorError, HeaderAuth, HttpPolicy, HttpTransport, LoopLocalClient
from tests.connectors.conftest import RecordedSleep


def echo_app() -> tuple[FastAPI, dict[str, int]]:
    app = FastAPI()
    seen = {"in_flight": 0, "most": 0}

    @app.post("/echo")
    async def echo(request: Request) -> Response:
        body = await request.body()
        return Response(
            content=body,
            status_code=201,
            media_type="application/json",
            headers={
                "x-authorization": request.headers.get("authorization", ""),
                "x-signature": request.headers.get("x-signature", ""),
                "x-idempotency": request.headers.get("idempotency-key", ""),
            },
        )

    @app.post("/form")
    async def form(request: Request) -> dict[str, Any]:
        return {
            "query": sorted(request.query_params.multi_items()),
            "body": (await request.body()).decode(),
            "type": request.headers.get("content-type"),
        }

    @app.get("/slow")
    async def slow() -> dict[str, bool]:
        seen["in_flight"] += 1
        seen["most"] = max(seen["most"], seen["in_flight"])
        await asyncio.sleep(0.3)
        seen["in_flight"] -= 1
        return {"ok": True}

    @app.get("/gzip")
    async def zipped() -> Response:
        return Response(
            gzip.compress(b'{"zipped": true}'), media_type="application/json", headers={"content-encoding": "gzip"}
        )

    @app.get("/refused")
    async def refused() -> Response:
        return Response('{"errorMessages": ["no"]}', status_code=409, media_type="application/json")

    return app, seen


class Signer(httpx.Auth):
    """Signs the body, as the webhook connector does: an auth flow that needs the request's content."""

    requires_request_body = True

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["x-signature"] = hmac.new(b"k", request.content, hashlib.sha256).hexdigest()
        yield request


def test_json_round_trip_with_headers_status_and_reason(serve: Callable[[FastAPI], str]) -> None:
    app, _ = echo_app()
    url = serve(app)

    async def scenario() -> httpx.Response:
        async with LoopLocalClient() as client:
            request = client.build_request("POST", f"{url}/echo", json={"a": 1}, headers={"Idempotency-Key": "k-1"})
            response = await client.send(request)
            refused = await client.get(f"{url}/refused")
            assert refused.status_code == 409 and refused.json() == {"errorMessages": ["no"]}
            assert refused.reason_phrase == "Conflict"
            return response

    response = asyncio.run(scenario())
    assert response.status_code == 201
    assert response.json() == {"a": 1}
    assert response.headers["x-idempotency"] == "k-1"
    assert response.reason_phrase == "Created"
    assert response.request.url.path == "/echo"


def test_auth_flows_add_credentials_and_signatures(serve: Callable[[FastAPI], str]) -> None:
    app, _ = echo_app()
    url = serve(app)

    async def scenario() -> tuple[httpx.Response, httpx.Response]:
        async with LoopLocalClient() as client:
            basic = await client.post(f"{url}/echo", json={}, auth=httpx.BasicAuth("ops@example.com", "tok"))
            signed = await client.send(client.build_request("POST", f"{url}/echo", content=b"payload"), auth=Signer())
            return basic, signed

    basic, signed = asyncio.run(scenario())
    assert basic.headers["x-authorization"] == httpx.BasicAuth("ops@example.com", "tok")._auth_header
    assert signed.headers["x-signature"] == hmac.new(b"k", b"payload", hashlib.sha256).hexdigest()


def test_gzip_answers_are_decoded_once(serve: Callable[[FastAPI], str]) -> None:
    app, _ = echo_app()
    url = serve(app)

    async def scenario() -> httpx.Response:
        async with LoopLocalClient() as client:
            return await client.get(f"{url}/gzip")

    response = asyncio.run(scenario())
    assert response.json() == {"zipped": True}
    assert "content-encoding" not in response.headers


def test_failures_are_httpx_exceptions(serve: Callable[[FastAPI], str]) -> None:
    app, _ = echo_app()
    url = serve(app)
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed_port = unused.getsockname()[1]

    async def scenario() -> None:
        async with LoopLocalClient(timeout=0.05) as client:
            with pytest.raises(httpx.TimeoutException):
                await client.get(f"{url}/slow")
            with pytest.raises(httpx.ConnectError):
                await client.get(f"http://127.0.0.1:{closed_port}/")
            with pytest.raises(TypeError, match="follow_redirects"):
                await client.get(f"{url}/echo", follow_redirects=True)

    asyncio.run(scenario())


def test_at_most_per_origin_requests_in_flight(serve: Callable[[FastAPI], str]) -> None:
    app, seen = echo_app()
    url = serve(app)

    async def scenario() -> None:
        async with LoopLocalClient(per_origin=2) as client:
            await asyncio.gather(*(client.get(f"{url}/slow") for _ in range(6)))

    asyncio.run(scenario())
    assert seen["most"] == 2


def test_one_client_serves_loop_after_loop_and_closes_each(
    serve: Callable[[FastAPI], str], caplog: pytest.LogCaptureFixture
) -> None:
    app, _ = echo_app()
    url = serve(app)
    client = LoopLocalClient()

    async def once(n: int) -> object:
        response = await client.post(f"{url}/echo", json={"n": n})
        assert response.json() == {"n": n}
        return client._sessions[asyncio.get_running_loop()][0]

    gc.collect()  # what earlier tests left unclosed is reported now, not inside the block below
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.ERROR, logger="asyncio"):
        warnings.simplefilter("always")
        sessions = [asyncio.run(once(n)) for n in range(3)]
        # A loop in another thread, as the engine's worker thread would have.
        thread = threading.Thread(target=lambda: sessions.append(asyncio.run(once(3))))
        thread.start()
        thread.join()
        gc.collect()
    assert len({id(s) for s in sessions}) == 4
    assert all(s.closed for s in sessions)  # type: ignore[attr-defined]
    assert not [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert "Unclosed" not in caplog.text


def test_exchange_sends_json_and_header_credentials_without_an_httpx_request(serve: Callable[[FastAPI], str]) -> None:
    app, _ = echo_app()
    url = serve(app)
    auth = HeaderAuth.basic("ops@example.com", "tok")

    async def scenario() -> tuple[httpx.Response, httpx.Response]:
        async with LoopLocalClient() as client:
            fast = await client.exchange(
                "POST", f"{url}/echo", headers={"Idempotency-Key": "k-2"}, json={"é": [1, 2]}, auth=auth, timeout=5
            )
            # Any other httpx client runs the same credentials as an ordinary auth flow.
            async with httpx.AsyncClient() as plain:
                slow = await plain.post(f"{url}/echo", json={}, auth=auth)
            return fast, slow

    fast, slow = asyncio.run(scenario())
    assert fast.status_code == 201 and fast.json() == {"é": [1, 2]}
    assert fast.headers["x-authorization"] == slow.headers["x-authorization"]
    assert fast.headers["x-authorization"] == httpx.BasicAuth("ops@example.com", "tok")._auth_header
    assert fast.headers["x-idempotency"] == "k-2"
    assert fast.request.method == "POST" and fast.request.url.path == "/echo"  # made when first read
    assert "tok" not in repr(auth)


def test_the_transport_takes_the_fast_path_and_keeps_its_failures(
    serve: Callable[[FastAPI], str], recorded_sleep: RecordedSleep
) -> None:
    app, _ = echo_app()
    url = serve(app)

    async def scenario() -> None:
        async with LoopLocalClient() as client:
            http = HttpTransport(
                "vendor", client, url, policy=HttpPolicy(timeout_s=0.05, retries=1), sleep=recorded_sleep
            )
            answered = await http.request("POST", "/echo", json={"a": 1}, idempotency_key="k-3")
            assert answered.json() == {"a": 1}
            with pytest.raises(ConnectorError, match="timed out") as timed_out:
                await http.request("GET", "/slow")
            assert timed_out.value.retryable and timed_out.value.code == "timeout"
            with pytest.raises(ConnectorError, match="answered 409") as refused:
                await http.request("GET", "/refused")
            assert not refused.value.retryable

    asyncio.run(scenario())
    assert len(recorded_sleep.waits) == 1  # the timeout was tried twice


def test_exchange_writes_query_and_form_values_as_httpx_does(serve: Callable[[FastAPI], str]) -> None:
    app, _ = echo_app()
    url = serve(app)
    values: dict[str, Any] = {
        "sysparm_fields": "sys_id,number",
        "flag": True,
        "off": False,
        "none": None,
        "many": ["a b", "c&d"],
    }

    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        async with LoopLocalClient() as client:
            fast = await client.exchange(
                "POST", f"{url}/form?x=1", headers={}, form={"amount": 100, "note": "é &"}, params=values, timeout=5
            )
            async with httpx.AsyncClient() as plain:
                slow = await plain.post(f"{url}/form?x=1", data={"amount": 100, "note": "é &"}, params=values)
            return fast.json(), slow.json()

    fast, slow = asyncio.run(scenario())
    assert fast["query"] == slow["query"]
    assert fast["query"] == [
        ["flag", "true"],
        ["many", "a b"],
        ["many", "c&d"],
        ["none", ""],
        ["off", "false"],
        ["sysparm_fields", "sys_id,number"],
    ]
    assert fast["type"] == slow["type"] == "application/x-www-form-urlencoded"
    assert (
        urllib.parse.parse_qs(fast["body"])
        == urllib.parse.parse_qs(slow["body"])
        == {"amount": ["100"], "note": ["é &"]}
    )
