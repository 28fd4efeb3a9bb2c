"""Governance over real HTTP: the done-when story (an operator requests credits, a finance controller approves,
two approvers for a large one, an auditor verifies the trail), OIDC bearer tokens against a JWKS file, the user
directory and delegations, and request-size limits on every route."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from opsrail.settings import Settings
from opsrail.wiring import build
from tests.api.conftest import Server, start_server
from tests.support import every_audit_entry

CREDIT = """
id: service-credit
version: 1
steps:
  - id: approve
    approval:
      roles: [finance_controller]
      rules:
        - when: "run.input.amount <= 500"
          tier: autonomous
        - when: "run.input.amount <= 5000"
          roles: [finance_controller]
        - roles: [finance_controller, approver]
          count: 2
          require: [finance_controller]
  - id: book
    needs: [approve]
    action: core.set
    with: {booked: "${ run.input.amount }"}
"""

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def publish(server: Server, tmp_path: Path) -> None:
    settings = Settings(home=Path(server.env["OPSRAIL_HOME"]), database_url=server.env.get("OPSRAIL_DATABASE_URL"))
    container = build(settings)
    path = tmp_path / "credit.yaml"
    path.write_text(CREDIT)
    container.automation.publish(path, "ada")
    container.close()


def wait_for(client: httpx.Client, run_id: str, predicate: Any, seconds: float = 15) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while True:
        run: dict[str, Any] = client.get(f"/v1/runs/{run_id}").json()
        if predicate(run) or time.monotonic() > deadline:
            return run
        time.sleep(0.05)


def task_of(client: httpx.Client, run_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        found: list[dict[str, Any]] = [t for t in client.get("/v1/tasks").json()["items"] if t["run_id"] == run_id]
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no task for {run_id}")


def token(name: str, roles: list[str], **extra: Any) -> str:
    now = int(time.time())
    claims = {"sub": name, "roles": roles, "iss": "https://idp.test", "aud": "opsrail", "iat": now, "exp": now + 300}
    return jwt.encode({**claims, **extra}, KEY, algorithm="RS256", headers={"kid": "k1"})


@pytest.fixture(scope="module")
def oidc_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("oidc")
    jwks = home / "jwks.json"
    jwk = RSAAlgorithm.to_jwk(KEY.public_key(), as_dict=True)
    jwks.write_text(httpx.Response(200, json={"keys": [{**jwk, "kid": "k1", "alg": "RS256"}]}).text)
    env = {
        "OPSRAIL_OIDC_JWKS": str(jwks),
        "OPSRAIL_OIDC_ISSUER": "https://idp.test",
        "OPSRAIL_OIDC_AUDIENCE": "opsrail",
        "OPSRAIL_MAX_BODY_BYTES": "4096",
    }
    yield from start_server(home, None, env)


def test_credits_are_approved_by_the_right_people_and_the_auditor_sees_it_all(server: Server, tmp_path: Path) -> None:
    publish(server, tmp_path)
    roles = server.role_tokens
    with (
        server.client(roles["operator"]) as operator,
        server.client(roles["finance_controller"]) as finance,
        server.client(roles["approver"]) as approver,
        server.client(roles["auditor"]) as auditor,
    ):
        small = operator.post("/v1/runs", json={"playbook": "service-credit", "input": {"amount": 300}}).json()
        assert wait_for(operator, small["run_id"], lambda r: r["status"] != "running")["status"] == "succeeded"

        medium = operator.post("/v1/runs", json={"playbook": "service-credit", "input": {"amount": 3000}}).json()
        task = task_of(operator, medium["run_id"])
        assert task["requested_by"] == "operator-token" and task["required"] == 1
        own = operator.post(f"/v1/tasks/{task['id']}:approve", json={"comment": "mine"})
        assert own.status_code == 403 and own.json()["action"] == "task.decide"
        assert finance.post(f"/v1/tasks/{task['id']}:approve", json={"comment": "ok"}).status_code == 200
        assert wait_for(operator, medium["run_id"], lambda r: r["status"] != "running")["status"] == "succeeded"

        large = operator.post("/v1/runs", json={"playbook": "service-credit", "input": {"amount": 9000}}).json()
        task = task_of(operator, large["run_id"])
        assert task["required"] == 2 and task["require"] == ["finance_controller"]
        assert approver.post(f"/v1/tasks/{task['id']}:approve", json={"comment": "fine"}).status_code == 200
        again = approver.post(f"/v1/tasks/{task['id']}:approve", json={"comment": "twice"})
        assert again.status_code == 409 and "already decided" in again.json()["detail"]
        assert wait_for(operator, large["run_id"], lambda r: True)["status"] == "running"
        assert finance.post(f"/v1/tasks/{task['id']}:approve", json={"comment": "ok"}).status_code == 200
        assert wait_for(operator, large["run_id"], lambda r: r["status"] != "running")["status"] == "succeeded"

        assert operator.get("/v1/audit:verify").status_code == 403
        verified = auditor.get("/v1/audit:verify").json()
        assert verified["ok"] is True and verified["checked"] > 0
        assert operator.get("/v1/decision-records:verify").status_code == 403
        records = auditor.get("/v1/decision-records:verify").json()
        assert records["ok"] is True and records["chain"]["checked"] == verified["checked"]
        assert records["checked"] == records["audited"] and records["problems"] == []
        trail = [e for e in every_audit_entry(auditor) if e["subject"] == task["id"]]
        assert [(e["actor"], e["action"]) for e in trail] == [
            ("approver-token", "task.approved"),
            ("finance_controller-token", "task.approved"),
        ]


def test_users_and_delegations_over_http(server: Server) -> None:
    roles = server.role_tokens
    with server.client(roles["admin"]) as admin, server.client(roles["finance_controller"]) as finance:
        put = admin.put("/v1/users/frank", json={"roles": ["finance_controller"]})
        assert put.status_code == 200 and put.json()["roles"] == ["finance_controller"]
        assert admin.put("/v1/users/frank", json={"roles": ["wizard"]}).status_code == 400
        assert finance.get("/v1/users").status_code == 403
        assert "frank" in [u["name"] for u in admin.get("/v1/users").json()["items"]]
        # An admin may delegate for anyone; a finance controller only their own roles.
        until = (datetime.now(UTC) + timedelta(days=30)).isoformat()
        for_frank = admin.post("/v1/delegations", json={"from": "frank", "to": "grace", "until": until})
        assert for_frank.status_code == 201, for_frank.text
        refused = finance.post("/v1/delegations", json={"from": "frank", "to": "mallory", "until": until})
        assert refused.status_code == 403
        assert finance.post(f"/v1/delegations/{for_frank.json()['id']}:revoke").status_code == 403
        assert admin.post(f"/v1/delegations/{for_frank.json()['id']}:revoke").status_code == 200
        listed = finance.get("/v1/delegations", params={"to": "grace"}).json()["items"]
        assert [d["revoked_at"] is not None for d in listed] == [True]


def test_oidc_tokens_carry_people_and_their_roles(oidc_server: Server, tmp_path: Path) -> None:
    publish(oidc_server, tmp_path)
    operator = httpx.Client(
        base_url=oidc_server.url, headers={"Authorization": f"Bearer {token('olga', ['operator'])}"}
    )
    finance = httpx.Client(
        base_url=oidc_server.url, headers={"Authorization": f"Bearer {token('fran', ['finance_controller'])}"}
    )
    with operator, finance:
        run = operator.post("/v1/runs", json={"playbook": "service-credit", "input": {"amount": 3000}})
        assert run.status_code == 201, run.text
        task = task_of(operator, run.json()["run_id"])
        assert task["requested_by"] == "olga"
        assert operator.post(f"/v1/tasks/{task['id']}:approve", json={"comment": "x"}).status_code == 403
        assert finance.post(f"/v1/tasks/{task['id']}:approve", json={"comment": "ok"}).status_code == 200

    for bad, words in [
        (token("eve", ["operator"], exp=int(time.time()) - 3600), "expired"),
        (token("eve", ["operator"], aud="someone-else"), "audience"),
        (token("eve", ["wizard"]), "role"),
        (token("eve", ["operator"])[:-4] + "AAAA", "signature"),
    ]:
        answer = httpx.get(f"{oidc_server.url}/v1/runs", headers={"Authorization": f"Bearer {bad}"})
        assert answer.status_code == 401 and words in answer.json()["detail"], answer.text
        assert bad not in answer.text
    # API tokens keep working beside OIDC.
    assert httpx.get(f"{oidc_server.url}/v1/runs", headers={"Authorization": f"Bearer {oidc_server.token}"}).is_success


def test_every_route_refuses_an_oversized_body(oidc_server: Server) -> None:
    with httpx.Client(base_url=oidc_server.url, headers={"Authorization": f"Bearer {oidc_server.token}"}) as client:
        declared = client.post("/v1/runs", json={"playbook": "service-credit", "input": {"blob": "x" * 10_000}})
        assert declared.status_code == 413 and declared.headers["content-type"] == "application/problem+json"

        def chunks() -> Iterator[bytes]:
            yield b'{"playbook": "service-credit", "input": {"blob": "'
            for _ in range(10):
                yield b"x" * 1000
            yield b'"}}'

        streamed = client.post("/v1/runs", content=chunks(), headers={"content-type": "application/json"})
        assert streamed.status_code == 413, streamed.text
        assert client.post("/v1/runs", json={"playbook": "nothing", "input": {}}).status_code == 404


def test_the_audit_log_is_read_a_page_at_a_time(server: Server) -> None:
    with server.client(server.role_tokens["auditor"]) as auditor:
        whole = auditor.get("/v1/audit", params={"limit": 10_000}).json()
        assert whole["next_after"] is None and len(whole["items"]) >= 3
        first = auditor.get("/v1/audit", params={"limit": 2}).json()
        assert [e["seq"] for e in first["items"]] == [e["seq"] for e in whole["items"][:2]]
        assert first["next_after"] == first["items"][-1]["seq"]
        paged = every_audit_entry(auditor, page=2)
        assert [e["hash"] for e in paged[: len(whole["items"])]] == [e["hash"] for e in whole["items"]]
        assert auditor.get("/v1/audit", params={"after": -1}).status_code == 400
