"""Authorization over real HTTP, generated from the OpenAPI document: every route but the health probes answers
401 without a token, and for each role the routes it may and may not call match the active policy set."""

from __future__ import annotations

import re
from typing import Any

import httpx

from opsrail.governance import ACTIONS, ROLES, PolicySet, Principal
from opsrail.services import reference_policies
from tests.api.conftest import Server

PUBLIC = {("get", "/healthz"), ("get", "/readyz"), ("get", "/openapi.json"), ("get", "/docs"), ("get", "/redoc")}


def operations(server: Server) -> list[tuple[str, str, dict[str, Any]]]:
    document = httpx.get(f"{server.url}/openapi.json", timeout=10).json()
    found = []
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            found.append((method, path, operation))
    return found


def concrete(path: str) -> str:
    # Path parameters get a harmless value: authorization is decided before the parameters are validated.
    return re.sub(r"\{[^}]+\}", "x", path)


def call(client: httpx.Client, method: str, path: str) -> tuple[int, dict[str, Any]]:
    """The status and, for a refusal, the problem document; streams (the change stream) are not read."""
    body = None if method == "get" else b"{}"
    headers = {"content-type": "application/json"}
    with client.stream(method.upper(), concrete(path), content=body, headers=headers) as answer:
        if answer.status_code in (401, 403):
            answer.read()
            assert answer.headers["content-type"] == "application/problem+json"
            return answer.status_code, answer.json()
        return answer.status_code, {}


def test_every_route_declares_an_action_from_the_catalogue(server: Server) -> None:
    for method, path, operation in operations(server):
        if (method, path) in PUBLIC:
            continue
        action = operation.get("x-opsrail-action")
        assert action in ACTIONS, f"{method.upper()} {path} declares no known action ({action!r})"
        if operation.get("x-opsrail-auth") == "slack-signature":
            continue  # Slack's callbacks are signed, not bearer-authenticated; they answer 401 unsigned too
        assert operation.get("security") == [{"HTTPBearer": []}], f"{method.upper()} {path} shows no bearer scheme"


def test_every_route_but_the_probes_needs_a_token(server: Server) -> None:
    checked = 0
    forged = httpx.Client(base_url=server.url, timeout=10, headers={"Authorization": "Bearer opsr_nope"})
    with httpx.Client(base_url=server.url, timeout=10) as anonymous, forged:
        for method, path, operation in operations(server):
            if (method, path) in PUBLIC or operation.get("x-opsrail-auth") == "slack-signature":
                continue  # signed callbacks: see tests/api/test_connectors_http.py
            status, _ = call(anonymous, method, path)
            assert status == 401, f"{method.upper()} {path} answered {status} without a token"
            status, _ = call(forged, method, path)
            assert status == 401, f"{method.upper()} {path} accepted a made-up token"
            checked += 1
    assert checked >= 30


def test_each_role_gets_exactly_the_routes_the_policies_allow(server: Server) -> None:
    policies = PolicySet(reference_policies())
    matrix: dict[str, set[str]] = {}
    for role in ROLES:
        with server.client(server.role_tokens[role]) as client:
            for method, path, operation in operations(server):
                if (method, path) in PUBLIC or operation.get("x-opsrail-per-resource"):
                    continue
                action = operation["x-opsrail-action"]
                allowed = policies.authorize(Principal("probe", frozenset({role})), action).allowed
                status, problem = call(client, method, path)
                if allowed:
                    assert status not in (401, 403), f"{role}: {method.upper()} {path} -> {problem}"
                    matrix.setdefault(role, set()).add(action)
                else:
                    assert status == 403, f"{role}: {method.upper()} {path} -> {status}"
                    assert problem["action"] == action and action in problem["detail"]
    # The policy set itself, in plain words: these are what the roles are for.
    assert {"event.send", "run.start"} <= matrix["service"] and "decision_record.read" not in matrix["service"]
    assert "audit.read" in matrix["auditor"] and "run.start" not in matrix["auditor"]
    assert "token.manage" not in matrix.get("operator", set()) and "run.control" in matrix["operator"]
    assert "metrics.read" in matrix["admin"]


def test_a_role_that_may_not_decide_a_task_is_refused_over_http(server: Server) -> None:
    # Deciding depends on the task (its roles and requester); the route still needs a token, and a made-up task
    # is not found for anyone allowed to look.
    with server.client(server.role_tokens["finance_controller"]) as client:
        assert client.post("/v1/tasks/task_nothing:approve", json={"comment": "x"}).status_code == 404
