"""The ledger over real HTTP: idempotent writes with Idempotency-Key, actions, approvals only for finance."""

from __future__ import annotations

from tests.api.conftest import Server


def test_ledger_routes(server: Server) -> None:
    roles = server.role_tokens
    with server.client(roles["operator"]) as operator, server.client(roles["finance_controller"]) as finance:
        index = operator.get("/v1/ledger").json()["collections"]
        assert "hold" in index["invoices"] and "approve" in index["credit-memos"]
        body = {"account_id": "globex", "amount": "500", "currency": "USD", "reason": "Sev1 outage"}
        first = operator.post("/v1/ledger/credit-memos", json=body, headers={"Idempotency-Key": "k-1"})
        assert first.status_code == 201, first.text
        again = operator.post("/v1/ledger/credit-memos", json=body, headers={"Idempotency-Key": "k-1"})
        assert again.status_code == 201 and again.json() == first.json()
        other = operator.post(
            "/v1/ledger/credit-memos", json={**body, "amount": "501"}, headers={"Idempotency-Key": "k-1"}
        )
        assert other.status_code == 409 and other.headers["content-type"] == "application/problem+json"
        memo = first.json()["id"]
        refused = operator.post(f"/v1/ledger/credit-memos/{memo}:approve", json={})
        assert refused.status_code == 403 and refused.json()["action"] == "ledger.approve"
        approved = finance.post(f"/v1/ledger/credit-memos/{memo}:approve", json={})
        assert (
            approved.status_code == 200 and approved.json()["attributes"]["approved_by"] == "finance_controller-token"
        )
        listed = finance.get("/v1/ledger/credit-memos", params={"account_id": "globex"}).json()["items"]
        assert [m["id"] for m in listed] == [memo]
        assert finance.get(f"/v1/ledger/credit-memos/{memo}").json()["status"] == "approved"
        assert finance.get("/v1/ledger/payments").status_code == 400  # not a collection
        bad = operator.post("/v1/ledger/invoices", json={"account_id": "globex", "currency": "dollars"})
        assert bad.status_code == 400 and {e["path"] for e in bad.json()["errors"]} >= {"$.currency", "$.amount_due"}
        wrong = operator.post(f"/v1/ledger/credit-memos/{memo}:hold", json={"reason": "x"})
        assert wrong.status_code == 400 and "no action 'hold'" in wrong.json()["detail"]
        with server.client(roles["auditor"]) as auditor:
            assert auditor.get("/v1/ledger/credit-memos").status_code == 200
            assert auditor.post("/v1/ledger/credit-memos", json=body).status_code == 403
