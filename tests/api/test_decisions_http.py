"""Decision tables, records and overrides over real HTTP against `opsrail up`."""

from __future__ import annotations

from pathlib import Path

import opsrail.decisions
from tests.api.conftest import Server

REFERENCE = Path(opsrail.decisions.__file__).parent / "reference" / "incident-router.yaml"


def test_publish_evaluate_record_and_override_over_http(server: Server) -> None:
    with server.client() as client:
        published = client.post("/v1/decisions", json={"document": REFERENCE.read_text()})
        assert published.status_code == 201, published.text
        assert published.json() == {"name": "incident-router", "version": 2}
        listed = client.get("/v1/decisions").json()["items"]
        assert ("incident-router", "table") in [(i["name"], i["kind"]) for i in listed]
        shown = client.get("/v1/decisions/incident-router").json()
        assert shown["hit_policy"] == "first" and shown["rules"][0]["id"] == "sev1-premium"

        evaluated = client.post(
            "/v1/decisions/incident-router:evaluate",
            json={"inputs": {"severity": 1, "topic": "Access", "premium_support": True, "arr": 200000}},
        )
        assert evaluated.status_code == 200, evaluated.text
        record = evaluated.json()
        assert record["outputs"] == {"team": "major-incident", "credit_exposure": 10000.0, "page_oncall": True}
        assert record["matched_rules"] == ["sev1-premium"] and record["route"] == "acted"

        bad = client.post("/v1/decisions/incident-router:evaluate", json={"inputs": {"severity": "high"}})
        assert bad.status_code == 400 and bad.headers["content-type"] == "application/problem+json"
        missing = client.post("/v1/decisions/nothing-here:evaluate", json={"inputs": {}})
        assert missing.status_code == 404

        no_reason = client.post(
            f"/v1/decision-records/{record['id']}:override", json={"value": {"team": "sre"}, "reason": ""}
        )
        assert no_reason.status_code == 400
        overridden = client.post(
            f"/v1/decision-records/{record['id']}:override",
            json={"value": {"team": "sre"}, "reason": "the database team owns this"},
        )
        assert overridden.status_code == 200, overridden.text
        assert overridden.json()["status"] == "overridden" and overridden.json()["final_outputs"] == {"team": "sre"}
        records = client.get("/v1/decision-records", params={"status": "overridden"}).json()["items"]
        assert record["id"] in [r["id"] for r in records]
        assert all(r["status"] == "overridden" for r in records)
        assert client.get(f"/v1/decision-records/{record['id']}").json()["reason"] == "the database team owns this"

        invalid = client.post("/v1/decisions", json={"document": "name: x\nversion: 1\nrules: []\n"})
        assert invalid.status_code == 400 and invalid.json()["errors"]

        hits = client.get("/v1/knowledge", params={"q": "SAML assertion failed during SSO setup"}).json()["items"]
        assert hits and "sso" in hits[0]["source"]


def test_decision_policies_are_applied_and_listed_over_http(server: Server) -> None:
    policy = (
        "decisions:\n  incident-router:\n    tier: approval\n    min_confidence: 0.8\n"
        '    approval:\n      - when: "output.credit_exposure <= 500.0"\n        tier: autonomous\n'
        "      - roles: [finance_controller]\n"
    )
    with server.client() as client:
        applied = client.post("/v1/decision-policies", json={"document": policy})
        assert applied.status_code == 200, applied.text
        assert applied.json()["applied"]["incident-router"]["tier"] == "approval"
        listed = client.get("/v1/decision-policies").json()["items"]
        assert listed["incident-router"]["min_confidence"] == 0.8
        assert listed["incident-router"]["approval"][1]["roles"] == ["finance_controller"]
        bad = client.post("/v1/decision-policies", json={"document": "decisions:\n  x: {tier: sometimes}\n"})
        assert bad.status_code == 400 and bad.headers["content-type"] == "application/problem+json"
        assert "request body" in bad.text
    with server.client(server.reader_token) as auditor:
        assert auditor.get("/v1/decision-policies").status_code == 200
        assert auditor.post("/v1/decision-policies", json={"document": policy}).status_code == 403
