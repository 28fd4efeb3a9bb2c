"""Runs, tasks and the change stream over real HTTP, with the worker running inside `opsrail up`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from opsrail.settings import Settings
from opsrail.wiring import build
from tests.api.conftest import Server

PLAYBOOK = """
id: http-flow
version: 1
steps:
  - id: prepare
    action: core.set
    with: {account: "${ run.input.account }"}
  - id: approve
    needs: [prepare]
    approval: {roles: [finance_controller]}
  - id: book
    needs: [approve]
    action: core.set
    with: {booked: true}
"""


def publish(server: Server, tmp_path: Path) -> None:
    settings = Settings(home=Path(server.env["OPSRAIL_HOME"]), database_url=server.env.get("OPSRAIL_DATABASE_URL"))
    container = build(settings)
    path = tmp_path / "flow.yaml"
    path.write_text(PLAYBOOK)
    container.automation.publish(path)
    container.close()


def wait_for(client: httpx.Client, run_id: str, predicate: Any, seconds: float = 15) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while True:
        run: dict[str, Any] = client.get(f"/v1/runs/{run_id}").json()
        if predicate(run) or time.monotonic() > deadline:
            return run
        time.sleep(0.1)


def test_a_run_started_over_http_waits_for_an_approval_and_finishes(server: Server, tmp_path: Path) -> None:
    publish(server, tmp_path)
    with server.client() as client:
        started = client.post("/v1/runs", json={"playbook": "http-flow", "input": {"account": "acme"}})
        assert started.status_code == 201, started.text
        run_id = started.json()["run_id"]
        run = wait_for(client, run_id, lambda r: any(s["status"] == "waiting" for s in r["steps"]))
        steps = {s["id"]: s for s in run["steps"]}
        assert steps["prepare"]["output"] == {"account": "acme"}
        tasks = client.get("/v1/tasks", params={"role": "finance_controller"}).json()["items"]
        [task] = [t for t in tasks if t["run_id"] == run_id]
        refused = client.post(f"/v1/tasks/{task['id']}:approve", json={"comment": "mine"})
        assert refused.status_code == 403 and refused.json()["action"] == "task.decide"  # an operator, not finance
        with server.client(server.role_tokens["finance_controller"]) as finance:
            assert finance.post(f"/v1/tasks/{task['id']}:reject", json={}).status_code == 400  # a reason is required
            decided = finance.post(f"/v1/tasks/{task['id']}:approve", json={"comment": "fine"})
            assert decided.status_code == 200, decided.text
        run = wait_for(client, run_id, lambda r: r["status"] != "running")
        assert run["status"] == "succeeded"
        assert [e["activity"] for e in run["timeline"]][-1] == "run.succeeded"

        listed = client.get("/v1/runs", params={"playbook": "http-flow"}).json()["items"]
        assert run_id in {r["id"] for r in listed}
        assert client.get("/v1/runs/run_nothing").status_code == 404
        unknown = client.post("/v1/runs", json={"playbook": "nothing-like-it"})
        assert unknown.status_code == 404 and unknown.headers["content-type"] == "application/problem+json"


def test_runs_can_be_cancelled_once(server: Server, tmp_path: Path) -> None:
    publish(server, tmp_path)
    with server.client() as client:
        run_id = client.post("/v1/runs", json={"playbook": "http-flow", "input": {"account": "x"}}).json()["run_id"]
        wait_for(client, run_id, lambda r: any(s["status"] == "waiting" for s in r["steps"]))
        cancelled = client.post(f"/v1/runs/{run_id}:cancel")
        assert cancelled.json() == {"id": run_id, "status": "cancelled"}
        again = client.post(f"/v1/runs/{run_id}:cancel")
        assert again.status_code == 409 and "already cancelled" in again.json()["detail"]
        assert client.get("/v1/tasks").json()["items"] == [] or all(
            t["run_id"] != run_id for t in client.get("/v1/tasks").json()["items"]
        )


def read_events(
    client: httpx.Client, params: dict[str, Any], headers: dict[str, str], want: int
) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    with client.stream("GET", "/v1/stream", params=params, headers=headers, timeout=10) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        event: dict[str, Any] = {}
        for line in response.iter_lines():
            if line.startswith("id: "):
                event["id"] = int(line[4:])
            elif line.startswith("event: "):
                event["event"] = line[7:]
            elif line.startswith("data: "):
                event["data"] = orjson.loads(line[6:])
            elif line == "" and event:
                found.append(event)
                event = {}
                if len(found) >= want:
                    break
    return found


def test_the_change_stream_is_resumable(server: Server, tmp_path: Path) -> None:
    publish(server, tmp_path)
    with server.client() as client:
        run_id = client.post("/v1/runs", json={"playbook": "http-flow", "input": {"account": "s"}}).json()["run_id"]
        wait_for(client, run_id, lambda r: any(s["status"] == "waiting" for s in r["steps"]))
        events = read_events(client, {"run": run_id, "after": 0}, {}, want=4)
        assert [e["event"] for e in events[:2]] == ["run.started", "step.ready"]
        assert all(e["data"]["run_id"] == run_id for e in events)
        ids = [e["id"] for e in events]
        assert ids == sorted(ids)
        resumed = read_events(client, {"run": run_id}, {"Last-Event-ID": str(ids[1])}, want=1)
        assert resumed[0]["id"] == ids[2]


def test_tasks_can_be_shown_reassigned_and_listed_as_mine(server: Server, tmp_path: Path) -> None:
    publish(server, tmp_path)
    with server.client(server.role_tokens["admin"]) as admin:  # the requester, who may not decide it
        started = admin.post("/v1/runs", json={"playbook": "http-flow", "input": {"account": "m"}})
        run_id = started.json()["run_id"]
    with server.client() as client:
        wait_for(client, run_id, lambda r: any(s["status"] == "waiting" for s in r["steps"]))
        [task] = [t for t in client.get("/v1/tasks").json()["items"] if t["run_id"] == run_id]
        shown = client.get(f"/v1/tasks/{task['id']}").json()
        assert shown["kind"] == "approval" and shown["context"]["step"] == "approve" and shown["assignee"] is None
        to_requester = client.post(f"/v1/tasks/{task['id']}:reassign", json={"to": "admin-token"})
        assert to_requester.status_code == 400 and "'admin-token' may not decide this task" in to_requester.text
        # Only someone who may decide it can be given it: "tests", an operator, may not.
        not_theirs = client.post(f"/v1/tasks/{task['id']}:reassign", json={"to": "tests"})
        assert not_theirs.status_code == 400 and "one of its roles (finance_controller)" in not_theirs.text
        controller = "finance_controller-token"  # the finance token's name: a service account may be given tasks
        moved = client.post(f"/v1/tasks/{task['id']}:reassign", json={"to": controller, "comment": "yours"})
        assert moved.status_code == 200, moved.text
        assert moved.json()["assignee"] == controller
        with server.client(server.role_tokens["finance_controller"]) as finance:
            mine = finance.get("/v1/tasks", params={"mine": "true"}).json()["items"]
        assert task["id"] in [t["id"] for t in mine]
        stranger = client.post(f"/v1/tasks/{task['id']}:reassign", json={"to": "nobody-here"})
        assert stranger.status_code == 400 and "'nobody-here' is neither a person" in stranger.text
        value = client.post(f"/v1/tasks/{task['id']}:reject", json={"comment": "no", "value": {"x": 1}})
        assert value.status_code == 400 and "not a value" in value.json()["detail"]
        with server.client(server.reader_token) as reader:
            refused = reader.post(f"/v1/tasks/{task['id']}:reassign", json={"to": "someone"})
            assert refused.status_code == 403 and "may not task.reassign" in refused.json()["detail"]
        run = client.get(f"/v1/runs/{run_id}").json()
        assert any(e["activity"] == "task.reassigned" for e in run["timeline"])


def test_a_filter_outside_its_vocabulary_is_a_problem(server: Server) -> None:
    with server.client() as client:
        for path, params, named in (
            ("/v1/tasks", {"role": "finance"}, "role 'finance'"),
            ("/v1/events", {"kind": "incidents"}, "kind 'incidents'"),
        ):
            answer = client.get(path, params=params)
            assert answer.status_code == 400, answer.text
            assert answer.headers["content-type"].startswith("application/problem+json")
            assert named in answer.json()["detail"]
        assert client.get("/v1/tasks", params={"role": "finance_controller"}).status_code == 200


TRIGGERED = """
id: http-incident
version: 1
trigger:
  events: [com.opsrail.incident.opened]
steps:
  - id: note
    action: core.set
    with: {title: "${ run.input.title }"}
"""


def test_a_manual_input_unlike_the_trigger_s_is_refused_unless_asked(server: Server, tmp_path: Path) -> None:
    settings = Settings(home=Path(server.env["OPSRAIL_HOME"]), database_url=server.env.get("OPSRAIL_DATABASE_URL"))
    container = build(settings)
    (tmp_path / "incident.yaml").write_text(TRIGGERED)
    container.automation.publish(tmp_path / "incident.yaml")
    container.close()
    with server.client() as client:
        refused = client.post("/v1/runs", json={"playbook": "http-incident", "input": {"title": 7}})
        assert refused.status_code == 400 and refused.headers["content-type"] == "application/problem+json"
        problem = refused.json()
        assert "canonical incident" in problem["detail"] and '"check_input": false' in problem["hint"]
        assert {e["path"] for e in problem["errors"]} >= {"$.input.id", "$.input.title"}
        unchecked = {"playbook": "http-incident", "input": {"title": 7}, "check_input": False}
        forced = client.post("/v1/runs", json=unchecked)
        assert forced.status_code == 201, forced.text
        fitting = client.post("/v1/runs", json={"playbook": "http-incident", "input": {"id": "i-1", "title": "Down"}})
        assert fitting.status_code == 201, fitting.text
        run = wait_for(client, fitting.json()["run_id"], lambda r: r["status"] != "running")
        assert run["status"] == "succeeded"


def test_playbooks_are_published_shown_and_activated_over_http(server: Server) -> None:
    first = PLAYBOOK.replace("id: http-flow", "id: http-api").replace(
        "action: core.set\n    with: {booked: true}", "action: core.sett\n    with: {booked: true}"
    )
    with server.client() as client:
        published = client.post("/v1/playbooks", json={"document": first})
        assert published.status_code == 201, published.text
        body = published.json()
        assert (body["id"], body["version"], body["active"]) == ("http-api", 1, True)
        assert body["warnings"] == [
            {
                "path": "$.steps[2].action",
                "message": "no configured connector offers 'core.sett' (did you mean 'core.set'?)",
                "code": "unknown_operation",
            }
        ]
        second = client.post("/v1/playbooks", json={"document": PLAYBOOK.replace("id: http-flow", "id: http-api")})
        assert second.status_code == 409  # version 1 exists with other text
        fixed = PLAYBOOK.replace("id: http-flow", "id: http-api").replace("version: 1", "version: 2")
        staged = client.post("/v1/playbooks", json={"document": fixed, "activate": False}).json()
        assert staged["active"] is False and staged["warnings"] == []
        assert client.get("/v1/playbooks/http-api").json()["version"] == 1  # the active one stays
        assert client.post("/v1/playbooks/http-api:activate", json={"version": 2}).status_code == 200

        shown = client.get("/v1/playbooks/http-api").json()
        assert shown["version"] == 2 and [s["id"] for s in shown["steps"]] == ["prepare", "approve", "book"]
        assert client.get("/v1/playbooks/http-api", params={"version": 1}).json()["warnings"][0]["code"] == (
            "unknown_operation"
        )
        canary = client.post("/v1/playbooks/http-api:activate", json={"version": 1, "canary_percent": 10})
        assert canary.status_code == 200, canary.text
        listed = {p["version"]: p for p in client.get("/v1/playbooks").json()["items"] if p["id"] == "http-api"}
        assert listed[1]["canary_percent"] == 10 and listed[2]["active"]
        assert client.post("/v1/playbooks/http-api:activate", json={"version": 1}).status_code == 200
        assert client.get("/v1/playbooks/http-api").json()["version"] == 1

        invalid = client.post("/v1/playbooks", json={"document": "id: x\nversion: 1\nsteps: []\n"})
        assert invalid.status_code == 400 and invalid.headers["content-type"] == "application/problem+json"
        assert "request body:3:" in invalid.json()["errors"][0]["message"]
        assert client.post("/v1/playbooks/http-api:activate", json={"version": 9}).status_code == 404
        assert client.get("/v1/playbooks/nothing-here").status_code == 404
    with server.client(server.reader_token) as auditor:
        assert auditor.post("/v1/playbooks", json={"document": fixed}).status_code == 403
        assert auditor.get("/v1/playbooks/http-api").status_code == 200
    with server.client(server.role_tokens["admin"]) as admin:
        activated = [
            e
            for e in admin.get("/v1/audit", params={"limit": 1000}).json()["items"]
            if e["action"] == "playbook.activated" and e["subject"] == "http-api@1"
        ]
        assert activated and all(e["actor"] == "tests" for e in activated)  # the token's name


def test_in_flight_runs_migrate_over_http(server: Server) -> None:
    own = PLAYBOOK.replace("id: http-flow", "id: http-migrate")  # its own: the other tests' runs stay on theirs
    with server.client() as client:
        assert client.post("/v1/playbooks", json={"document": own}).status_code == 201
        run_id = client.post("/v1/runs", json={"playbook": "http-migrate", "input": {"account": "m"}}).json()["run_id"]
        wait_for(client, run_id, lambda r: any(s["status"] == "waiting" for s in r["steps"]))
        renamed = own.replace("version: 1", "version: 2").replace("id: approve", "id: sign-off")
        renamed = renamed.replace("needs: [approve]", "needs: [sign-off]")
        assert client.post("/v1/playbooks", json={"document": renamed}).status_code == 201
        body = {"from": 1, "to": 2, "map": {"approve": "sign-off"}}
        dry = client.post("/v1/playbooks/http-migrate:migrate", json=body)
        assert dry.status_code == 200, dry.text
        assert dry.json()["moved"] == [run_id] and dry.json()["applied"] is False
        assert client.get(f"/v1/runs/{run_id}").json()["version"] == 1
        done = client.post("/v1/playbooks/http-migrate:migrate", json={**body, "apply": True}).json()
        assert done["applied"] is True and done["moved"] == [run_id]
        assert client.get(f"/v1/runs/{run_id}").json()["version"] == 2
        unmapped = client.post("/v1/playbooks/http-migrate:migrate", json={"from": 2, "to": 1, "map": {"x": "y"}})
        assert unmapped.status_code == 400 and unmapped.json()["errors"][0]["path"] == "$.map.x"
    with server.client(server.reader_token) as auditor:
        assert auditor.post("/v1/playbooks/http-migrate:migrate", json=body).status_code == 403
