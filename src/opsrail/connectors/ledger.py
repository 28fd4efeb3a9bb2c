"""The built-in ledger as a connector: the ``ledger.*`` operations playbooks call, in process.

Each operation passes the engine's idempotency key to the ledger, so a retried step changes nothing twice. These
are the finance side of the service-delivery automations: pause an invoice when provisioning slips, open a
provisional credit on a Sev1, raise and validate a change order on scope expansion, post time on a specialist
escalation, close out billing on offboarding.
"""

from __future__ import annotations

import asyncio
from datetime import date
from decimal import Decimal
from typing import Any, Literal, Protocol

from pydantic import Field

from opsrail.connectors._sdk import Connector, Model, OperationSpec
from opsrail.engine import CallContext, OperationFailed
from opsrail.model import OpsrailError, Unavailable


class LedgerPort(Protocol):
    def create(
        self, collection: str, body: dict[str, Any], *, actor: str | None = None, idempotency_key: str | None = None
    ) -> dict[str, Any]: ...

    def act(
        self,
        collection: str,
        record_id: str,
        action: str,
        params: dict[str, Any] | None = None,
        *,
        actor: str | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]: ...

    def get(self, collection: str, record_id: str) -> dict[str, Any]: ...

    def list(self, collection: str, account_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]: ...


class HoldInvoice(Model):
    invoice: str
    reason: str = Field(min_length=1)


class InvoiceRef(Model):
    invoice: str


class BillingStart(Model):
    invoice: str | None = None
    subscription: str | None = None
    date: date


class CreditMemo(Model):
    account_id: str
    amount: Decimal = Field(gt=0)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    reason: str = Field(min_length=1)
    invoice_id: str | None = None
    incident_id: str | None = None


class CreditMemoRef(Model):
    credit_memo: str
    by: str | None = None
    reason: str | None = None


class ChangeOrderIn(Model):
    account_id: str
    description: str = Field(min_length=1)
    amount: Decimal = Field(ge=0)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    project_id: str | None = None
    order_id: str | None = None
    effort_hours: Decimal | None = Field(default=None, ge=0)


class ChangeOrderRef(Model):
    change_order: str
    by: str


class MilestoneIn(Model):
    name: str
    due_on: date | None = None


class ProjectIn(Model):
    account_id: str
    name: str
    milestones: list[MilestoneIn] = Field(default_factory=list)


class MilestoneUpdate(Model):
    project: str
    milestone: str
    status: Literal["pending", "in_progress", "blocked", "done"] | None = None
    due_on: date | None = None


class TimeIn(Model):
    project_id: str
    person: str
    hours: Decimal = Field(gt=0, le=24)
    activity: str
    posted_on: date | None = None
    note: str | None = None


class InvoiceIn(Model):
    account_id: str
    amount_due: Decimal = Field(ge=0)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    subscription_id: str | None = None
    billing_start_date: date | None = None
    number: str | None = None


class CloseBilling(Model):
    account_id: str
    reason: str = Field(min_length=1)


class LedgerConnector(Connector):
    name = "ledger"
    summary = "the built-in system of record: contracts, subscriptions, invoices, credit memos, change orders, projects"

    def __init__(self, ledger: LedgerPort) -> None:
        self.ledger = ledger

    async def _run(self, fn: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Call the ledger off the event loop; its refusals (not found, wrong state, invalid) are permanent."""
        try:
            result: dict[str, Any] = await asyncio.to_thread(fn, *args, **kwargs)
        except Unavailable as exc:
            raise OperationFailed(f"ledger: {exc}", retryable=True) from None
        except OpsrailError as exc:
            raise OperationFailed(f"ledger: {exc}", retryable=False) from None
        return result

    def operations(self) -> list[OperationSpec]:
        ledger = self.ledger

        async def hold_invoice(a: HoldInvoice, call: CallContext) -> Any:
            return await self._run(
                ledger.act,
                "invoices",
                a.invoice,
                "hold",
                {"reason": a.reason},
                actor="engine",
                idempotency_key=call.idempotency_key,
            )

        async def release_invoice(a: InvoiceRef, call: CallContext) -> Any:
            return await self._run(
                ledger.act, "invoices", a.invoice, "release", {}, actor="engine", idempotency_key=call.idempotency_key
            )

        async def set_billing_start(a: BillingStart, call: CallContext) -> Any:
            collection, target = ("invoices", a.invoice) if a.invoice else ("subscriptions", a.subscription)
            if target is None:
                raise OperationFailed("ledger.set_billing_start: give an invoice or a subscription", retryable=False)
            return await self._run(
                ledger.act,
                collection,
                target,
                "set-billing-start",
                {"date": a.date.isoformat()},
                actor="engine",
                idempotency_key=call.idempotency_key,
            )

        async def create_credit_memo(a: CreditMemo, call: CallContext) -> Any:
            body = a.model_dump(mode="json", exclude_none=True)
            body["status"] = "provisional"
            return await self._run(
                ledger.create, "credit-memos", body, actor="engine", idempotency_key=call.idempotency_key
            )

        async def approve_credit_memo(a: CreditMemoRef, call: CallContext) -> Any:
            return await self._run(
                ledger.act,
                "credit-memos",
                a.credit_memo,
                "approve",
                {"by": a.by or "approval step"},
                actor="engine",
                idempotency_key=call.idempotency_key,
            )

        async def void_credit_memo(a: CreditMemoRef, call: CallContext) -> Any:
            return await self._run(
                ledger.act,
                "credit-memos",
                a.credit_memo,
                "void",
                {"reason": a.reason or "voided by playbook"},
                actor="engine",
                idempotency_key=call.idempotency_key,
            )

        async def create_change_order(a: ChangeOrderIn, call: CallContext) -> Any:
            return await self._run(
                ledger.create,
                "change-orders",
                a.model_dump(mode="json", exclude_none=True),
                actor="engine",
                idempotency_key=call.idempotency_key,
            )

        async def validate_change_order(a: ChangeOrderRef, call: CallContext) -> Any:
            return await self._run(
                ledger.act,
                "change-orders",
                a.change_order,
                "validate",
                {"by": a.by},
                actor="engine",
                idempotency_key=call.idempotency_key,
            )

        async def create_project(a: ProjectIn, call: CallContext) -> Any:
            return await self._run(
                ledger.create,
                "projects",
                a.model_dump(mode="json", exclude_none=True),
                actor="engine",
                idempotency_key=call.idempotency_key,
            )

        async def update_milestone(a: MilestoneUpdate, call: CallContext) -> Any:
            params = a.model_dump(mode="json", exclude_none=True, exclude={"project"})
            return await self._run(
                ledger.act,
                "projects",
                a.project,
                "update-milestone",
                params,
                actor="engine",
                idempotency_key=call.idempotency_key,
            )

        async def post_time(a: TimeIn, call: CallContext) -> Any:
            body = a.model_dump(mode="json", exclude_none=True)
            body.setdefault("posted_on", date.today().isoformat())
            return await self._run(
                ledger.create, "time-postings", body, actor="engine", idempotency_key=call.idempotency_key
            )

        async def create_invoice(a: InvoiceIn, call: CallContext) -> Any:
            return await self._run(
                ledger.create,
                "invoices",
                a.model_dump(mode="json", exclude_none=True),
                actor="engine",
                idempotency_key=call.idempotency_key,
            )

        async def finalize_invoice(a: InvoiceRef, call: CallContext) -> Any:
            return await self._run(
                ledger.act, "invoices", a.invoice, "finalize", {}, actor="engine", idempotency_key=call.idempotency_key
            )

        async def close_billing(a: CloseBilling, call: CallContext) -> Any:
            """Offboarding: finalize draft invoices (the final bill), cancel active subscriptions."""
            finalized, canceled = [], []
            for invoice in await asyncio.to_thread(ledger.list, "invoices", a.account_id, 1000):
                if invoice.get("status") == "draft":
                    await self._run(
                        ledger.act,
                        "invoices",
                        invoice["id"],
                        "finalize",
                        {},
                        actor="engine",
                        idempotency_key=f"{call.idempotency_key}:finalize:{invoice['id']}",
                    )
                    finalized.append(invoice["id"])
            for subscription in await asyncio.to_thread(ledger.list, "subscriptions", a.account_id, 1000):
                if subscription.get("status") not in ("canceled",):
                    await self._run(
                        ledger.act,
                        "subscriptions",
                        subscription["id"],
                        "cancel",
                        {},
                        actor="engine",
                        idempotency_key=f"{call.idempotency_key}:cancel:{subscription['id']}",
                    )
                    canceled.append(subscription["id"])
            return {"account_id": a.account_id, "finalized_invoices": finalized, "canceled_subscriptions": canceled}

        return [
            OperationSpec(
                "hold_invoice", "put an invoice on hold (e.g. provisioning slipped)", HoldInvoice, None, hold_invoice
            ),
            OperationSpec("create_invoice", "a draft invoice (activated at go-live)", InvoiceIn, None, create_invoice),
            OperationSpec("finalize_invoice", "activate a draft invoice", InvoiceRef, None, finalize_invoice),
            OperationSpec("release_invoice", "release an invoice's hold", InvoiceRef, None, release_invoice),
            OperationSpec(
                "set_billing_start",
                "set the billing start date of an invoice or subscription",
                BillingStart,
                None,
                set_billing_start,
            ),
            OperationSpec("create_credit_memo", "open a provisional credit memo", CreditMemo, None, create_credit_memo),
            OperationSpec(
                "approve_credit_memo", "approve a provisional credit memo", CreditMemoRef, None, approve_credit_memo
            ),
            OperationSpec("void_credit_memo", "void a credit memo", CreditMemoRef, None, void_credit_memo),
            OperationSpec(
                "create_change_order",
                "raise a change order for finance validation",
                ChangeOrderIn,
                None,
                create_change_order,
            ),
            OperationSpec(
                "validate_change_order", "finance validates a change order", ChangeOrderRef, None, validate_change_order
            ),
            OperationSpec("create_project", "a delivery project with milestones", ProjectIn, None, create_project),
            OperationSpec("update_milestone", "update a project milestone", MilestoneUpdate, None, update_milestone),
            OperationSpec("post_time", "post time on a project", TimeIn, None, post_time),
            OperationSpec(
                "close_billing", "offboarding: final bill, cancel subscriptions", CloseBilling, None, close_billing
            ),
        ]
