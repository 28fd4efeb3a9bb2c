"""Property-based tests of the OpenAPI schema (schemathesis): generated requests never get a 5xx.

The schema comes from the running server; schemathesis generates valid and invalid requests for every route but
the change stream (both modes), sends them over real HTTP as an administrator (so they pass authorisation and reach
the handlers) and checks every answer: no 5xx, and every error a problem+json document.

The suite draws the same examples on every run (`derandomize`), so a test run passes or fails on the code alone.
A deeper hunt draws new ones: `OPSRAIL_FUZZ_RANDOM=1 OPSRAIL_FUZZ_EXAMPLES=400 .venv/bin/pytest
tests/api/test_openapi_fuzz.py` (about three minutes).
"""

from __future__ import annotations

import os

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from tests.api.conftest import Server

RANDOM = os.environ.get("OPSRAIL_FUZZ_RANDOM") == "1"
EXAMPLES = int(os.environ.get("OPSRAIL_FUZZ_EXAMPLES", "30"))

ROUTES = [
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("POST", "/v1/events"),
    ("GET", "/v1/events"),
    ("POST", "/v1/events:batch"),
    ("POST", "/v1/ingest/{source}"),
    ("GET", "/v1/sources"),
    ("GET", "/v1/dead-letters"),
    ("GET", "/v1/dead-letters/{dead_letter_id}"),
    ("POST", "/v1/dead-letters/{dead_letter_id}:replay"),
    ("GET", "/v1/schemas"),
    ("GET", "/v1/schemas/{name}"),
    ("GET", "/v1/playbooks"),
    ("POST", "/v1/playbooks"),
    ("GET", "/v1/playbooks/{playbook_id}"),
    ("POST", "/v1/playbooks/{playbook_id}:activate"),
    ("POST", "/v1/playbooks/{playbook_id}:migrate"),
    ("POST", "/v1/runs"),
    ("GET", "/v1/runs"),
    ("GET", "/v1/runs/{run_id}"),
    ("POST", "/v1/runs/{run_id}:{action}"),
    ("GET", "/v1/tasks"),
    ("GET", "/v1/tasks/{task_id}"),
    ("POST", "/v1/tasks/{task_id}:reassign"),
    ("POST", "/v1/tasks/{task_id}:{decision}"),
    ("GET", "/v1/decisions"),
    ("POST", "/v1/decisions"),
    ("GET", "/v1/decisions/{name}"),
    ("POST", "/v1/decisions/{name}:evaluate"),
    ("GET", "/v1/decision-records"),
    ("GET", "/v1/decision-records:verify"),
    ("GET", "/v1/decision-records/{record_id}"),
    ("POST", "/v1/decision-records/{record_id}:override"),
    ("GET", "/v1/models"),
    ("GET", "/v1/models/{name}"),
    ("GET", "/v1/models/{name}/versions"),
    ("GET", "/v1/decision-policies"),
    ("POST", "/v1/decision-policies"),
    ("POST", "/v1/models:prune"),
    ("GET", "/v1/knowledge"),
    ("GET", "/v1/audit"),
    ("GET", "/v1/audit:verify"),
    ("GET", "/v1/policies"),
    ("GET", "/v1/users"),
    ("PUT", "/v1/users/{name}"),
    ("GET", "/v1/delegations"),
    ("POST", "/v1/delegations"),
    ("POST", "/v1/delegations/{delegation_id}:revoke"),
    ("GET", "/v1/ledger"),
    ("GET", "/v1/ledger/{collection}"),
    ("POST", "/v1/ledger/{collection}"),
    ("GET", "/v1/ledger/{collection}/{record_id}"),
    ("POST", "/v1/ledger/{collection}/{record_id}:{action}"),
    ("GET", "/v1/connectors"),
    ("GET", "/v1/connectors:check"),
    ("POST", "/v1/connectors/slack/interactions"),
    ("GET", "/v1/connectors/dead-letters"),
    ("POST", "/v1/connectors/dead-letters/{letter_id}:replay"),
    ("GET", "/v1/kpis"),
    ("GET", "/v1/insights/process/{playbook_id}"),
    ("GET", "/v1/insights/conformance"),
    ("GET", "/v1/insights/drift"),
    ("GET", "/v1/insights/health"),
    ("GET", "/v1/insights/models"),
    ("GET", "/v1/insights/at-risk"),
    ("GET", "/v1/insights/log"),
]
NOT_FUZZED = {("GET", "/v1/stream")}
"""The change stream never ends by design (tests/api/test_runs_http.py reads it)."""
NOTHING_TO_BREAK = {("GET", "/healthz"), ("GET", "/readyz"), ("POST", "/v1/connectors/slack/interactions")}
"""Routes without a parameter or a schema'd body: there is no invalid request to generate (the Slack route's
form body is checked by its signature; tests/api/test_connectors_http.py covers it)."""


def test_every_route_of_the_schema_is_fuzzed(server: Server) -> None:
    served = httpx.get(f"{server.url}/openapi.json").json()["paths"]
    routes = {(method.upper(), path) for path, operations in served.items() for method in operations}
    assert routes - NOT_FUZZED == set(ROUTES)


CASES = [
    pytest.param(method, path, mode, id=f"{method} {path}-{name}")
    for method, path in ROUTES
    for mode, name in ((GenerationMode.POSITIVE, "valid"), (GenerationMode.NEGATIVE, "invalid"))
    if not (mode is GenerationMode.NEGATIVE and (method, path) in NOTHING_TO_BREAK)
]


@pytest.mark.parametrize(("method", "path", "mode"), CASES)
def test_generated_requests_never_get_a_server_error(
    server: Server, method: str, path: str, mode: GenerationMode
) -> None:
    schema = schemathesis.openapi.from_dict(httpx.get(f"{server.url}/openapi.json").json())
    operation = schema[path][method]
    headers = {"Authorization": f"Bearer {server.role_tokens['admin']}"}

    @given(data=st.data())
    @settings(
        max_examples=EXAMPLES,
        derandomize=not RANDOM,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def check(data: st.DataObject) -> None:
        case = data.draw(operation.as_strategy(generation_mode=mode))
        response = case.call(base_url=server.url, headers=headers)
        case.validate_response(response, checks=[not_a_server_error])
        if response.status_code >= 400:
            content_type = response.headers.get("content-type", [""])[0]
            assert content_type.startswith("application/problem+json"), response.text

    check()
