"""The API over real HTTP against `opsrail up` in a subprocess (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import orjson
import pytest

from tests.api.conftest import Server
from tests.support import cloudevent, incident_event

FIXTURES = Path(__file__).parents[1] / "fixtures"
PROBLEM = "application/problem+json"


def _metric(client: httpx.Client, name: str, label: str) -> float:
    text = client.get("/metrics").text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and label in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_probes_need_no_token(server: Server) -> None:
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{server.url}/readyz").json() == {"status": "ready"}


def test_every_other_route_needs_a_valid_token(server: Server) -> None:
    for path in ("/v1/events", "/v1/dead-letters", "/metrics", "/v1/schemas/incident"):
        response = httpx.get(f"{server.url}{path}")
        assert response.status_code == 401, path
        assert response.headers["content-type"] == PROBLEM
        assert response.json()["type"] == "urn:opsrail:problem:unauthenticated"
    bad = httpx.post(f"{server.url}/v1/events", headers={"Authorization": "Bearer nope"}, json=cloudevent())
    assert bad.status_code == 401 and "not valid" in bad.json()["detail"]


def test_a_read_only_role_may_not_send(server: Server) -> None:
    with server.client(server.reader_token) as client:
        assert client.get("/v1/events").status_code == 200
        response = client.post("/v1/events", json=cloudevent("ro-1"))
        assert response.status_code == 403 and response.headers["content-type"] == PROBLEM


def test_new_event_is_202_and_duplicate_is_200_with_the_first_receipt(server: Server) -> None:
    with server.client() as client:
        event = incident_event("http-dup-1")
        first = client.post(
            "/v1/events", content=orjson.dumps(event), headers={"content-type": "application/cloudevents+json"}
        )
        assert first.status_code == 202
        receipt = first.json()
        assert set(receipt) == {"id", "source", "received_at", "status"}
        assert receipt["id"] == "http-dup-1" and receipt["status"] == "accepted"
        before = client.get("/v1/events", params={"limit": 1000}).json()["items"]
        second = client.post("/v1/events", json=event)
        assert second.status_code == 200
        assert second.json() == receipt
        after = client.get("/v1/events", params={"limit": 1000}).json()["items"]
        assert len(after) == len(before)
        assert _metric(client, "opsrail_events_duplicate_total", 'channel="api"') >= 1


def test_malformed_events_are_problems_with_paths_and_dead_letters(server: Server) -> None:
    with server.client() as client:
        raw = incident_event("http-bad-1", severity=12)
        del raw["specversion"]
        response = client.post("/v1/events", json=raw)
        assert response.status_code == 400
        assert response.headers["content-type"] == PROBLEM
        problem = response.json()
        # Every error at once: the envelope's and the canonical object's.
        assert [e["path"] for e in problem["errors"]] == ["$.specversion", "$.data.severity"]
        letter = client.get(f"/v1/dead-letters/{problem['dead_letter_id']}").json()
        assert json.loads(letter["body"]) == raw
        assert letter["reason"] == problem["detail"]

        not_json = client.post(
            "/v1/events", content=b'{"specversion": "1.0",', headers={"content-type": "application/json"}
        )
        assert not_json.status_code == 400 and not_json.json()["errors"][0]["path"] == "$"
        wrong_type = client.post("/v1/events", content=b"id=1", headers={"content-type": "text/plain"})
        assert wrong_type.status_code == 415 and "dead_letter_id" in wrong_type.json()


@pytest.mark.parametrize("moment", ["0001-01-01T01:00:00+05:04", "9999-12-31T23:00:00-05:00"])
def test_a_time_outside_the_calendar_once_in_utc_is_a_problem_not_a_crash(server: Server, moment: str) -> None:
    with server.client() as client:
        raw = {"specversion": "1.0", "id": f"edge-{moment[:4]}", "source": "edge", "type": "t", "time": moment}
        response = client.post("/v1/events", json=raw)
        assert response.status_code == 400, response.text
        assert response.headers["content-type"] == PROBLEM
        assert [e["path"] for e in response.json()["errors"]] == ["$.time"]
        assert client.get(f"/v1/dead-letters/{response.json()['dead_letter_id']}").status_code == 200
        batch = client.post("/v1/events:batch", json=[raw])
        assert batch.status_code < 500, batch.text
        # The same inside the canonical object an event carries.
        inside = client.post("/v1/events", json=incident_event(f"edge-data-{moment[:4]}", opened_at=moment))
        assert inside.status_code == 400, inside.text
        assert [e["path"] for e in inside.json()["errors"]] == ["$.data.opened_at"]
    for route, token in (("/v1/events", server.token), ("/v1/audit", server.reader_token)):
        with server.client(token) as client:
            listed = client.get(route, params={"since": moment})
            assert listed.status_code == 400, (route, listed.text)
            assert listed.headers["content-type"] == PROBLEM


def test_bodies_over_one_mebibyte_are_413_and_kept(server: Server) -> None:
    with server.client() as client:
        big = orjson.dumps(cloudevent("big-1", data={"blob": "x" * (1024 * 1024)}))
        response = client.post("/v1/events", content=big, headers={"content-type": "application/json"})
        assert response.status_code == 413
        letter = client.get(f"/v1/dead-letters/{response.json()['dead_letter_id']}").json()
        assert letter["truncated"] is True and letter["body_bytes"] == len(big)


def test_batch_gives_a_result_per_event(server: Server) -> None:
    with server.client() as client:
        lines = [orjson.dumps(cloudevent("batch-1")), b"{oops", orjson.dumps(incident_event("batch-3", severity=0))]
        response = client.post(
            "/v1/events:batch", content=b"\n".join(lines), headers={"content-type": "application/x-ndjson"}
        )
        assert response.status_code == 200
        body = response.json()
        assert (body["accepted"], body["duplicates"], body["rejected"]) == (1, 0, 2)
        assert [r["status"] for r in body["results"]] == ["accepted", "rejected", "rejected"]
        assert body["results"][2]["errors"][0]["path"] == "$[2].data.severity"
        array = client.post(
            "/v1/events:batch",
            content=orjson.dumps([cloudevent("batch-1"), cloudevent("batch-4")]),
            headers={"content-type": "application/cloudevents-batch+json"},
        )
        assert [r["status"] for r in array.json()["results"]] == ["duplicate", "accepted"]


def test_jira_webhook_is_normalised_and_listed(server: Server) -> None:
    payload = orjson.loads((FIXTURES / "jira_issue_created.json").read_bytes())
    with server.client() as client:
        response = client.post("/v1/ingest/jira", json=payload)
        assert response.status_code == 202, response.text
        assert response.json()["accepted"] == 1
        again = client.post("/v1/ingest/jira", json=payload)
        assert again.status_code == 200 and again.json()["duplicates"] == 1
        items = client.get("/v1/events", params={"kind": "incident", "source": "https://acme.atlassian.net"}).json()
        [event] = items["items"]
        assert event["type"] == "com.opsrail.incident.opened"
        assert event["data"]["external_ids"]["itsm_id"] == "ENG-42"
        assert event["data"]["severity"] == 2


def test_unmappable_vendor_payload_is_dead_lettered_and_replayable(server: Server) -> None:
    with server.client() as client:
        response = client.post("/v1/ingest/jira", json={"webhookEvent": "jira:issue_created"})
        assert response.status_code == 422
        letter_id = response.json()["dead_letter_id"]
        pending = client.get("/v1/dead-letters", params={"status": "pending", "limit": 1000}).json()["items"]
        assert letter_id in {d["id"] for d in pending}
        replay = client.post(f"/v1/dead-letters/{letter_id}:replay")
        assert replay.status_code == 422  # still unmappable: kept, attempt counted
        assert client.get(f"/v1/dead-letters/{letter_id}").json()["attempts"] == 1
        unknown = client.post("/v1/ingest/nosuchsystem", json={})
        assert unknown.status_code == 404 and "dead_letter_id" in unknown.json()


def test_replay_through_the_api_stores_the_event(server: Server) -> None:
    with server.client() as client:
        # A foreign event type with a bad extension name is refused; its bytes are kept.
        refused = client.post(
            "/v1/events",
            content=b'{"specversion":"1.0","id":"r1","source":"s","type":"t","X":1}',
            headers={"content-type": "application/json"},
        )
        letter_id = refused.json()["dead_letter_id"]
        assert client.post(f"/v1/dead-letters/{letter_id}:replay").status_code == 400
        assert client.post("/v1/dead-letters/dl_nothing:replay").status_code == 404


def test_schemas_and_sources(server: Server) -> None:
    with server.client() as client:
        names = client.get("/v1/schemas").json()["items"]
        assert "incident" in names and "cloudevent" in names
        schema = client.get("/v1/schemas/incident").json()
        severity = schema["properties"]["severity"]["anyOf"][0]
        assert (severity["minimum"], severity["maximum"]) == (1, 4)
        assert client.get("/v1/schemas/nothing").status_code == 404
        sources = {s["name"] for s in client.get("/v1/sources").json()["items"]}
        assert sources == {"cloudevents", "jira", "servicenow", "zendesk", "stripe", "alertmanager"}


def test_metrics_count_and_time_requests(server: Server) -> None:
    with server.client() as client:
        client.post("/v1/events", json=cloudevent("metrics-1"))
        text = client.get("/metrics").text
        assert 'opsrail_events_accepted_total{channel="api"}' in text
        assert 'opsrail_http_request_duration_seconds_bucket{le="0.001",method="POST",route="/v1/events"' in text
        assert "opsrail_events_rejected_total" in text


def test_unknown_routes_are_problems_too(server: Server) -> None:
    with server.client() as client:
        response = client.get("/v1/nothing-here")
        assert response.status_code == 404 and response.headers["content-type"] == PROBLEM
