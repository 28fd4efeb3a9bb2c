"""The built-in ledger as a connector: the ``ledger.*`` operations playbooks call, in process.

Each operation passes the engine's idempotency key to the ledger, so a retried step changes nothing twice. These
are the finance side of the service-delivery automations: pause an invoice when provisioning slips, open a
provisional credit on a Sev1, raise and validate a change order on scope expansion, post time on a specialist
escalation, close out billing on offboarding.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any, Literal, Protocol

from pydantic import Field

from opsrail.connectors._sdk import Connector, Handler, Model, OperationSpec
from opsrail.engine import CallContext, OperationFailed, holds_writes
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
        """Call the ledger; its refusals (not found, wrong state, invalid) are permanent.

        Inside a step its writes are held for the step's commit, so a call only validates and reads: that is done
        on the event loop, cheaper than a hop to a thread and back. Otherwise it writes, off the event loop.
        """
        try:
            if holds_writes():
                result: dict[str, Any] = fn(*args, **kwargs)
            else:
                result = await asyncio.to_thread(fn, *args, **kwargs)
        except Unavailable as exc:
            raise OperationFailed(f"ledger: {exc}", retryable=True) from None
        except OpsrailError as exc:
            raise OperationFailed(f"ledger: {exc}", retryable=False) from None
        return result

    def _create(self, collection: str, prepare: Callable[[Any], dict[str, Any]] | None = None) -> Handler:
        """A handler that creates a record from the operation's input."""

        async def handler(arguments: Any, call: CallContext) -> Any:
            body = prepare(arguments) if prepare else arguments.model_dump(mode="json", exclude_none=True)
            return await self._run(
                self.ledger.create, collection, body, actor="engine", idempotency_key=call.idempotency_key
            )

        return handler

    def _act(
        self, collection: str, target: Callable[[Any], str | None], action: str, params: Callable[[Any], dict[str, Any]]
    ) -> Handler:
        """A handler that takes a named action on the record ``target(arguments)`` names."""

        async def handler(arguments: Any, call: CallContext) -> Any:
            record = target(arguments)
            if record is None:
                raise OperationFailed(f"ledger: {action} needs the record to act on", retryable=False)
            return await self._run(
                self.ledger.act,
                collection,
                record,
                action,
                params(arguments),
                actor="engine",
                idempotency_key=call.idempotency_key,
            )

        return handler

    async def _set_billing_start(self, a: BillingStart, call: CallContext) -> Any:
        collection, target = ("invoices", a.invoice) if a.invoice else ("subscriptions", a.subscription)
        if target is None:
            raise OperationFailed("ledger.set_billing_start: give an invoice or a subscription", retryable=False)
        return await self._act(
            collection, lambda _: target, "set-billing-start", lambda x: {"date": x.date.isoformat()}
        )(a, call)

    async def _close_billing(self, a: CloseBilling, call: CallContext) -> Any:
        """Offboarding: finalize draft invoices (the final bill), cancel active subscriptions."""
        finalized, canceled = [], []
        for invoice in await asyncio.to_thread(self.ledger.list, "invoices", a.account_id, 1000):
            if invoice.get("status") == "draft":
                await self._run(
                    self.ledger.act,
                    "invoices",
                    invoice["id"],
                    "finalize",
                    {},
                    actor="engine",
                    idempotency_key=f"{call.idempotency_key}:finalize:{invoice['id']}",
                )
                finalized.append(invoice["id"])
        for subscription in await asyncio.to_thread(self.ledger.list, "subscriptions", a.account_id, 1000):
            if subscription.get("status") != "canceled":
                await self._run(
                    self.ledger.act,
                    "subscriptions",
                    subscription["id"],
                    "cancel",
                    {},
                    actor="engine",
                    idempotency_key=f"{call.idempotency_key}:cancel:{subscription['id']}",
                )
                canceled.append(subscription["id"])
        return {"account_id": a.account_id, "finalized_invoices": finalized, "canceled_subscriptions": canceled}

    def operations(self) -> list[OperationSpec]:
        def provisional(a: CreditMemo) -> dict[str, Any]:
            return {**a.model_dump(mode="json", exclude_none=True), "status": "provisional"}

        def dated(a: TimeIn) -> dict[str, Any]:
            return {"posted_on": date.today().isoformat(), **a.model_dump(mode="json", exclude_none=True)}

        def milestone(a: MilestoneUpdate) -> dict[str, Any]:
            return a.model_dump(mode="json", exclude_none=True, exclude={"project"})

        def nothing(_: Any) -> dict[str, Any]:
            return {}

        spec = OperationSpec
        return [
            spec(
                "hold_invoice",
                "put an invoice on hold (e.g. provisioning slipped)",
                HoldInvoice,
                None,
                self._act("invoices", lambda a: a.invoice, "hold", lambda a: {"reason": a.reason}),
            ),
            spec("create_invoice", "a draft invoice (activated at go-live)", InvoiceIn, None, self._create("invoices")),
            spec(
                "finalize_invoice",
                "activate a draft invoice",
                InvoiceRef,
                None,
                self._act("invoices", lambda a: a.invoice, "finalize", nothing),
            ),
            spec(
                "release_invoice",
                "release an invoice's hold",
                InvoiceRef,
                None,
                self._act("invoices", lambda a: a.invoice, "release", nothing),
            ),
            spec(
                "set_billing_start",
                "set the billing start date of an invoice or subscription",
                BillingStart,
                None,
                self._set_billing_start,
            ),
            spec(
                "create_credit_memo",
                "open a provisional credit memo",
                CreditMemo,
                None,
                self._create("credit-memos", provisional),
            ),
            spec(
                "approve_credit_memo",
                "approve a provisional credit memo",
                CreditMemoRef,
                None,
                self._act(
                    "credit-memos", lambda a: a.credit_memo, "approve", lambda a: {"by": a.by or "approval step"}
                ),
            ),
            spec(
                "void_credit_memo",
                "void a credit memo",
                CreditMemoRef,
                None,
                self._act(
                    "credit-memos",
                    lambda a: a.credit_memo,
                    "void",
                    lambda a: {"reason": a.reason or "voided by playbook"},
                ),
            ),
            spec(
                "create_change_order",
                "raise a change order for finance validation",
                ChangeOrderIn,
                None,
                self._create("change-orders"),
            ),
            spec(
                "validate_change_order",
                "finance validates a change order",
                ChangeOrderRef,
                None,
                self._act("change-orders", lambda a: a.change_order, "validate", lambda a: {"by": a.by}),
            ),
            spec("create_project", "a delivery project with milestones", ProjectIn, None, self._create("projects")),
            spec(
                "update_milestone",
                "update a project milestone",
                MilestoneUpdate,
                None,
                self._act("projects", lambda a: a.project, "update-milestone", milestone),
            ),
            spec("post_time", "post time on a project", TimeIn, None, self._create("time-postings", dated)),
            spec(
                "close_billing",
                "offboarding: final bill, cancel subscriptions",
                CloseBilling,
                None,
                self._close_billing,
            ),
        ]
