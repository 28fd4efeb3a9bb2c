"""Property-based tests of the OpenAPI schema (schemathesis): generated requests never get a 5xx.

The change stream (`GET /v1/stream`) is left out: it never ends by design; tests/api/test_runs_http.py reads it.

The schema comes from the running server; schemathesis generates valid and invalid requests for each
ingestion route (both modes), sends them over real HTTP and checks every answer.
"""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from tests.api.conftest import Server

ROUTES = [
    ("POST", "/v1/events"),
    ("POST", "/v1/events:batch"),
    ("POST", "/v1/ingest/{source}"),
    ("GET", "/v1/events"),
    ("GET", "/v1/dead-letters"),
    ("GET", "/v1/dead-letters/{dead_letter_id}"),
    ("POST", "/v1/dead-letters/{dead_letter_id}:replay"),
    ("POST", "/v1/runs"),
    ("GET", "/v1/runs"),
    ("GET", "/v1/runs/{run_id}"),
    ("POST", "/v1/runs/{run_id}:{action}"),
    ("GET", "/v1/tasks"),
    ("POST", "/v1/tasks/{task_id}:{decision}"),
]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_generated_requests_never_get_a_server_error(
    server: Server, method: str, path: str, mode: GenerationMode
) -> None:
    schema = schemathesis.openapi.from_dict(httpx.get(f"{server.url}/openapi.json").json())
    operation = schema[path][method]
    headers = {"Authorization": f"Bearer {server.token}"}

    @given(data=st.data())
    @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(data: st.DataObject) -> None:
        case = data.draw(operation.as_strategy(generation_mode=mode))
        response = case.call(base_url=server.url, headers=headers)
        case.validate_response(response, checks=[not_a_server_error])
        if response.status_code >= 400:
            content_type = response.headers.get("content-type", [""])[0]
            assert content_type.startswith("application/problem+json"), response.text

    check()
