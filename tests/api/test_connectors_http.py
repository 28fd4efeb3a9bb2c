"""Connectors inside a real `opsrail up`: a playbook asks for approval in Slack (the fake Slack over real HTTP), a
signed click on Approve decides the task as the mapped person, the rules still apply, and the catalogue and health
are served over the API."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from opsrail.fakes.slack import create_app as slack_app
from opsrail.fakes.slack import interaction_request
from opsrail.settings import Settings
from opsrail.wiring import build
from tests.api.conftest import Server, start_server
from tests.knowledge.conftest import serve_in_thread

SECRET = "slack-signing-secret"
PLAYBOOK = """
id: slack-credit
version: 1
steps:
  - id: ask
    action: slack.request_approval
    with: {channel: C0FIN, task_id: "pending", title: "Credit for ${ run.input.account }", text: "3,000 EUR"}
  - id: approve
    needs: [ask]
    approval: {roles: [finance_controller]}
  - id: book
    needs: [approve]
    action: ledger.create_credit_memo
    with: {account_id: "${ run.input.account }", amount: 3000, currency: EUR, reason: "approved in Slack"}
"""


@pytest.fixture(scope="module")
def slack() -> Iterator[tuple[str, Any]]:
    app = slack_app()
    with serve_in_thread(app) as url:
        yield url, app


@pytest.fixture(scope="module")
def wired(tmp_path_factory: pytest.TempPathFactory, slack: tuple[str, Any]) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("connectors")
    settings = {
        "slack": {
            "base_url": f"{slack[0]}/api",
            "bot_token": "xoxb-test",
            "signing_secret": SECRET,
            "users": {"U0FIONA": "fiona", "U0OLIVE": "olive"},
        }
    }
    yield from start_server(home, None, {"OPSRAIL_CONNECTORS": json.dumps(settings)})


def wait_for_task(client: httpx.Client, run_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        found = [t for t in client.get("/v1/tasks").json()["items"] if t["run_id"] == run_id]
        if found:
            return dict(found[0])
        time.sleep(0.05)
    raise AssertionError(client.get(f"/v1/runs/{run_id}").text)


def test_a_slack_click_decides_as_the_mapped_person(wired: Server, slack: tuple[str, Any], tmp_path: Path) -> None:
    container = build(Settings(home=Path(wired.env["OPSRAIL_HOME"])))
    for name, role in [("fiona", "finance_controller"), ("olive", "operator")]:
        container.directory.put_user(name, [role], "tests")
    path = tmp_path / "pb.yaml"
    path.write_text(PLAYBOOK)
    container.automation.publish(path, "ada")
    container.close()
    with wired.client(wired.role_tokens["operator"]) as client:
        run_id = client.post("/v1/runs", json={"playbook": "slack-credit", "input": {"account": "acme"}}).json()[
            "run_id"
        ]
        task = wait_for_task(client, run_id)
        [posted] = list(slack[1].state.messages["C0FIN"])
        assert "Credit for acme" in json.dumps(posted)

        url = f"{wired.url}/v1/connectors/slack/interactions"
        headers, body = interaction_request(SECRET, task["id"], True, "U0OLIVE", user_name="olive")
        refused = httpx.post(url, content=body, headers=headers)
        assert refused.status_code == 403 and refused.json()["action"] == "task.decide"  # an operator lacks the role
        headers, body = interaction_request("wrong-secret", task["id"], True, "U0FIONA", user_name="fiona")
        assert httpx.post(url, content=body, headers=headers).status_code == 401
        assert httpx.post(url, content=body).status_code == 401  # unsigned
        headers, body = interaction_request(SECRET, task["id"], True, "U0NOBODY", user_name="mallory")
        assert httpx.post(url, content=body, headers=headers).status_code == 403
        headers, body = interaction_request(SECRET, task["id"], True, "U0FIONA", user_name="fiona")
        answered = httpx.post(url, content=body, headers=headers)
        assert answered.status_code == 200 and "fiona approved" in answered.json()["text"]

        deadline = time.monotonic() + 15
        while client.get(f"/v1/runs/{run_id}").json()["status"] == "running" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.get(f"/v1/runs/{run_id}").json()["status"] == "succeeded"
        [memo] = client.get("/v1/ledger/credit-memos", params={"account_id": "acme"}).json()["items"]
        assert memo["status"] == "provisional"

        catalogue = client.get("/v1/connectors").json()["items"]
        names = {op["name"] for item in catalogue for op in item["operations"]}
        assert {"slack.request_approval", "ledger.hold_invoice"} <= names
        health = {h["name"]: h["ok"] for h in client.get("/v1/connectors:check").json()["items"]}
        assert health == {"ledger": True, "slack": True}
