"""ERPNext connector: hold and release invoices, credit notes, projects with tasks, and timesheets, through the
Frappe REST API (``/api/resource/{DocType}``, ``/api/method/...``) with token authentication.

Settings (``config``):

``base_url``
    The site, e.g. ``https://erp.example.com`` (plain ``http`` only for localhost: the token goes with every
    request).
``api_key``, ``api_secret`` (or ``api_key_file``, ``api_secret_file``)
    A token pair of the API user; sent as ``Authorization: token <key>:<secret>``. ERPNext checks that user's
    roles, so give it only what the playbooks need (Accounts User, Projects User).
``invoice_doctype`` (default ``Sales Invoice``)
    The DocType ``hold_invoice`` and ``release_invoice`` change. Stock ERPNext has the hold fields (``on_hold``,
    ``hold_comment``, ``release_date``) on *Purchase Invoice* only: to hold a Sales Invoice the site needs those
    three as custom fields with *Allow on Submit* set. Frappe silently drops fields a DocType lacks, so the
    connector reads the saved document back and fails (permanently) rather than report a hold that did not happen.
``credit_note_account``
    The account debited by a credit note (e.g. ``Sales Returns - AC``); the receivable side is the invoice's own
    ``debit_to``. A ``create_credit_note`` step may name ``account`` instead.
``company``
    The default company of new projects and timesheets.
``key_field``
    Optional custom field (Data, on Journal Entry and Timesheet) holding the engine's idempotency key. Without
    it the key is written as a ``[opsrail:<key>]`` prefix of ``user_remark`` (Journal Entry) or ``note``
    (Timesheet) and found with a ``like`` filter, which needs no customisation but scans those columns.
``timezone`` (default ``UTC``)
    The site's time zone: timezone-aware ``from_time`` values are converted to it (Frappe stores naive times).

Settings that cannot work do not stop the connector from being built: :meth:`ERPNextConnector.check` reports
the problem and every operation refuses it as a permanent error (code ``config``) before anything is sent.

Idempotency: Frappe has no idempotency header, so every create looks for its document first (by the key, or by
the project name, which must belong to the same customer, and the task subject) and sends the ``POST`` without
in-transport retries; when a create fails in a way worth retrying, the connector looks again before the next try.
A document created by a request whose answer was lost is therefore found, not created twice. Reads and ``PUT``
updates are idempotent and use the transport's ordinary retries.

Errors: Frappe answers 401 ``AuthenticationError``, 403 ``PermissionError``, 404 ``DoesNotExistError``, 409
``DuplicateEntryError`` and 417 ``ValidationError`` (and its kin: ``MandatoryError``, ``LinkValidationError``,
``UpdateAfterSubmitError``); all are permanent, and the message is the one Frappe shows its users (from
``_server_messages``, else ``exception``). 429 (honouring ``Retry-After``), 5xx and timeouts are retryable.
"""

from __future__ import annotations

import asyncio
import html
import json
import random
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
from pydantic import Field, model_validator

from opsrail.connectors._sdk import (
    Connector,
    ConnectorError,
    HttpPolicy,
    HttpTransport,
    Model,
    OperationSpec,
    default_error,
    secret,
    settings_problem,
)
from opsrail.engine import CallContext, OperationFailed

_Name = Field(min_length=1, max_length=140)  # Frappe's names and Link values are at most 140 characters
_TAG = re.compile(r"<[^>]+>")
_DOTTED = re.compile(r"^[\w.]+(?:Error|Exception)\w*:\s*")
_LIST_LIMIT = 50

T = TypeVar("T")


# -- operation inputs and outputs ---------------------------------------------------------------------------


class HoldInvoice(Model):
    invoice: str = _Name
    reason: str = Field(min_length=1, max_length=2000)
    release_date: date | None = None


class ReleaseInvoice(Model):
    invoice: str = _Name


class InvoiceHold(Model):
    invoice: str
    on_hold: bool


class CreateCreditNote(Model):
    customer: str = _Name
    company: str = _Name
    amount: Decimal = Field(gt=0, max_digits=18, decimal_places=6)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    against_invoice: str = _Name
    remark: str = Field(min_length=1, max_length=2000)
    account: str | None = Field(default=None, min_length=1, max_length=140)
    submit: bool = False


class CreditNote(Model):
    name: str
    docstatus: int


class NewTask(Model):
    subject: str = _Name
    exp_start_date: date | None = None
    exp_end_date: date | None = None

    @model_validator(mode="after")
    def _dates_in_order(self) -> NewTask:
        if self.exp_start_date and self.exp_end_date and self.exp_end_date < self.exp_start_date:
            raise ValueError("exp_end_date is before exp_start_date")
        return self


class CreateProject(Model):
    project_name: str = _Name
    customer: str = _Name
    expected_start_date: date
    expected_end_date: date
    tasks: list[NewTask] = Field(default_factory=list, max_length=200)
    company: str | None = Field(default=None, min_length=1, max_length=140)

    @model_validator(mode="after")
    def _dates_in_order(self) -> CreateProject:
        if self.expected_end_date < self.expected_start_date:
            raise ValueError("expected_end_date is before expected_start_date")
        subjects = [task.subject for task in self.tasks]
        if len(set(subjects)) != len(subjects):
            raise ValueError("task subjects must be unique within a project")
        return self


class ProjectCreated(Model):
    project: str
    tasks: list[str]


class PostTimesheet(Model):
    employee: str = _Name
    project: str = _Name
    activity_type: str = _Name
    hours: float = Field(gt=0, le=24)
    from_time: datetime
    description: str = Field(min_length=1, max_length=2000)
    company: str | None = Field(default=None, min_length=1, max_length=140)
    submit: bool = False


class TimesheetPosted(Model):
    name: str


# -- Frappe's error bodies ------------------------------------------------------------------------------------


def _plain(text: str) -> str:
    return " ".join(html.unescape(_TAG.sub(" ", text)).split())


def _server_messages(raw: Any) -> list[str]:
    """``_server_messages``: a JSON string holding a list of JSON strings, each ``{"message": ..., ...}``."""
    try:
        items = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return [_plain(raw)] if isinstance(raw, str) else []
    messages = []
    for item in items if isinstance(items, list) else []:
        try:
            value = json.loads(item) if isinstance(item, str) else item
        except ValueError:
            value = item
        text = value.get("message") if isinstance(value, dict) else value
        if isinstance(text, str) and text.strip():
            messages.append(_plain(text))
    return messages


def frappe_error(response: httpx.Response) -> str:
    """The sentence a Frappe error carries, prefixed by its ``exc_type``: what ERPNext would show its user."""
    try:
        body = response.json()
    except ValueError:
        return default_error(response)
    if not isinstance(body, dict):
        return default_error(response)
    exc_type = body.get("exc_type") if isinstance(body.get("exc_type"), str) else None
    messages = _server_messages(body.get("_server_messages"))
    if not messages and isinstance(body.get("errors"), list):  # the v2 API's shape
        messages = [_plain(str(e.get("message"))) for e in body["errors"] if isinstance(e, dict) and e.get("message")]
        exc_type = exc_type or next((e.get("type") for e in body["errors"] if isinstance(e, dict)), None)
    if not messages and isinstance(body.get("exception"), str):
        messages = [_plain(_DOTTED.sub("", body["exception"].strip()))]
    if not messages and isinstance(body.get("message"), str):
        messages = [_plain(body["message"])]
    text = "; ".join(m for m in messages if m)[:300]
    if exc_type and text:
        return f"{exc_type}: {text}"
    return text or exc_type or default_error(response)


# -- the connector --------------------------------------------------------------------------------------------


def _marker(key: str) -> str:
    return f"[opsrail:{key}]"


class ERPNextConnector(Connector):
    """ERPNext over the Frappe REST API; see the module's documentation for settings and guarantees."""

    name = "erpnext"
    summary = "ERPNext: hold and release invoices, credit notes, projects and tasks, timesheets"

    def __init__(
        self,
        config: Mapping[str, Any],
        client: httpx.AsyncClient,
        *,
        policy: HttpPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        base_url = str(config.get("base_url") or "").strip().rstrip("/")
        self.problem: str | None = None  # a configuration that cannot work: check() says so, calls refuse
        try:
            api_key = secret(config, "api_key", self.name) or ""
            api_secret = secret(config, "api_secret", self.name) or ""
        except OperationFailed as exc:
            api_key, api_secret, self.problem = "", "", str(exc)
        self.problem = self.problem or settings_problem(
            self.name,
            base_url,
            {"api_key": api_key, "api_secret or api_secret_file": api_secret},
            "https://erp.example.com",
        )
        try:
            self.timezone = ZoneInfo(str(config.get("timezone") or "UTC"))
        except (ZoneInfoNotFoundError, ValueError):
            self.timezone = ZoneInfo("UTC")
            self.problem = self.problem or f"erpnext: unknown timezone {config.get('timezone')!r}"
        if self.problem is not None:
            base_url = "https://erpnext.invalid"
        self.base_url = base_url
        self.invoice_doctype = str(config.get("invoice_doctype") or "Sales Invoice")
        self.credit_note_account = str(config.get("credit_note_account") or "") or None
        self.company = str(config.get("company") or "") or None
        self.key_field = str(config.get("key_field") or "") or None
        self.policy = policy or HttpPolicy()
        self.sleep = sleep
        headers = {"Authorization": f"token {api_key}:{api_secret}", "Accept": "application/json"}
        self.http = HttpTransport(
            self.name, client, base_url, headers=headers, policy=self.policy, error_message=frappe_error, sleep=sleep
        )
        # Creates go out once per try (see _create); they share the breaker and rate limit with everything else.
        self._create_http = HttpTransport(
            self.name,
            client,
            base_url,
            headers=headers,
            policy=replace(self.policy, retries=0),
            error_message=frappe_error,
            sleep=sleep,
        )
        self._create_http.breaker = self.http.breaker
        self._create_http.limiter = self.http.limiter

    def operations(self) -> list[OperationSpec]:
        return [
            OperationSpec(
                "hold_invoice", "Put an invoice on hold, with a reason", HoldInvoice, InvoiceHold, self.hold_invoice
            ),
            OperationSpec(
                "release_invoice", "Release a held invoice", ReleaseInvoice, InvoiceHold, self.release_invoice
            ),
            OperationSpec(
                "create_credit_note",
                "Create a credit note (a Journal Entry) against a customer's invoice",
                CreateCreditNote,
                CreditNote,
                self.create_credit_note,
            ),
            OperationSpec(
                "create_project",
                "Create a project for a customer with its tasks",
                CreateProject,
                ProjectCreated,
                self.create_project,
            ),
            OperationSpec(
                "post_timesheet",
                "Record an employee's hours on a project",
                PostTimesheet,
                TimesheetPosted,
                self.post_timesheet,
            ),
        ]

    async def check(self) -> dict[str, Any]:
        if self.problem is not None:
            return {"ok": False, "detail": self.problem}
        try:
            response = await self.http.request("GET", "/api/method/frappe.auth.get_logged_user")
            user = response.json().get("message")
        except (OperationFailed, ValueError, AttributeError, httpx.HTTPError) as exc:
            return {"ok": False, "detail": str(exc) or type(exc).__name__}
        if not isinstance(user, str) or not user or user == "Guest":
            return {"ok": False, "detail": "erpnext: the token does not log in a user"}
        return {"ok": True, "detail": f"logged in as {user}"}

    # -- operations --------------------------------------------------------------------------------------------

    async def hold_invoice(self, arguments: HoldInvoice, call: CallContext) -> InvoiceHold:
        values = {
            "on_hold": 1,
            "hold_comment": arguments.reason,
            "release_date": arguments.release_date.isoformat() if arguments.release_date else None,
        }
        saved = await self._update(self.invoice_doctype, arguments.invoice, values)
        self._require_hold_field(saved, arguments.invoice)
        if not saved.get("on_hold"):
            raise ConnectorError(
                f"erpnext: {self.invoice_doctype} {arguments.invoice} was saved but is not on hold",
                retryable=False,
                code="not_applied",
            )
        return InvoiceHold(invoice=str(saved.get("name") or arguments.invoice), on_hold=True)

    async def release_invoice(self, arguments: ReleaseInvoice, call: CallContext) -> InvoiceHold:
        saved = await self._update(self.invoice_doctype, arguments.invoice, {"on_hold": 0, "release_date": None})
        self._require_hold_field(saved, arguments.invoice)
        if saved.get("on_hold"):
            raise ConnectorError(
                f"erpnext: {self.invoice_doctype} {arguments.invoice} was saved but is still on hold",
                retryable=False,
                code="not_applied",
            )
        return InvoiceHold(invoice=str(saved.get("name") or arguments.invoice), on_hold=False)

    async def create_credit_note(self, arguments: CreateCreditNote, call: CallContext) -> CreditNote:
        key = call.idempotency_key
        found = await self._find_by_key("Journal Entry", "user_remark", key)
        if found is not None:
            return CreditNote(name=str(found["name"]), docstatus=int(found.get("docstatus") or 0))
        account = arguments.account or self.credit_note_account
        if not account:
            raise ConnectorError(
                "erpnext: no account to debit: set credit_note_account or pass account",
                retryable=False,
                code="config",
            )
        invoice = await self._get("Sales Invoice", arguments.against_invoice)
        invoice_currency = invoice.get("party_account_currency") or invoice.get("currency")
        if invoice_currency and invoice_currency != arguments.currency:
            raise ConnectorError(
                f"erpnext: the credit note is in {arguments.currency} but Sales Invoice {arguments.against_invoice} "
                f"is in {invoice_currency}",
                retryable=False,
                code="currency_mismatch",
            )
        receivable = invoice.get("debit_to")
        if not isinstance(receivable, str) or not receivable:
            raise ConnectorError(
                f"erpnext: Sales Invoice {arguments.against_invoice} has no receivable account (debit_to)",
                retryable=False,
                code="bad_response",
            )
        amount = float(arguments.amount)
        remark = f"{_marker(key)} {arguments.remark}"
        entry: dict[str, Any] = {
            "voucher_type": "Credit Note",
            "company": arguments.company,
            "posting_date": datetime.now(self.timezone).date().isoformat(),
            "user_remark": arguments.remark if self.key_field else remark,
            "docstatus": 1 if arguments.submit else 0,
            "accounts": [
                {
                    "account": receivable,
                    "party_type": "Customer",
                    "party": arguments.customer,
                    "credit_in_account_currency": amount,
                    "reference_type": "Sales Invoice",
                    "reference_name": arguments.against_invoice,
                },
                {"account": account, "debit_in_account_currency": amount},
            ],
        }
        if self.key_field:
            entry[self.key_field] = key
        created = await self._create(
            "Journal Entry", entry, lambda: self._find_by_key("Journal Entry", "user_remark", key), looked=True
        )
        return CreditNote(name=str(created["name"]), docstatus=int(created.get("docstatus") or 0))

    async def create_project(self, arguments: CreateProject, call: CallContext) -> ProjectCreated:
        company = arguments.company or self.company
        project_name = arguments.project_name

        async def find_project() -> dict[str, Any] | None:
            rows = await self._list(
                "Project", [["project_name", "=", project_name]], ["name", "customer"], order_by="creation asc"
            )
            if rows and rows[0].get("customer") != arguments.customer:
                raise ConnectorError(
                    f"erpnext: project {project_name!r} already exists ({rows[0]['name']}) for another customer, "
                    f"{rows[0].get('customer') or 'none'}",
                    retryable=False,
                    code="conflict",
                )
            return rows[0] if rows else None

        body: dict[str, Any] = {
            "project_name": project_name,
            "customer": arguments.customer,
            "expected_start_date": arguments.expected_start_date.isoformat(),
            "expected_end_date": arguments.expected_end_date.isoformat(),
        }
        if company:
            body["company"] = company
        project = str((await self._create("Project", body, find_project))["name"])

        existing = {
            str(row.get("subject")): str(row["name"])
            for row in await self._list(
                "Task", [["project", "=", project]], ["name", "subject"], order_by="creation asc", limit=0
            )
        }
        names = []
        for task in arguments.tasks:
            if task.subject in existing:
                names.append(existing[task.subject])
                continue

            async def find_task(subject: str = task.subject) -> dict[str, Any] | None:
                rows = await self._list("Task", [["project", "=", project], ["subject", "=", subject]], ["name"])
                return rows[0] if rows else None

            doc: dict[str, Any] = {"subject": task.subject, "project": project}
            if task.exp_start_date:
                doc["exp_start_date"] = task.exp_start_date.isoformat()
            if task.exp_end_date:
                doc["exp_end_date"] = task.exp_end_date.isoformat()
            if company:
                doc["company"] = company
            names.append(str((await self._create("Task", doc, find_task, looked=True))["name"]))
        return ProjectCreated(project=project, tasks=names)

    async def post_timesheet(self, arguments: PostTimesheet, call: CallContext) -> TimesheetPosted:
        key = call.idempotency_key
        start = arguments.from_time
        if start.tzinfo is not None:
            start = start.astimezone(self.timezone).replace(tzinfo=None)
        end = start + timedelta(hours=arguments.hours)
        doc: dict[str, Any] = {
            "employee": arguments.employee,
            "parent_project": arguments.project,
            "note": arguments.description if self.key_field else f"{_marker(key)} {arguments.description}",
            "docstatus": 1 if arguments.submit else 0,
            "time_logs": [
                {
                    "activity_type": arguments.activity_type,
                    "project": arguments.project,
                    "from_time": start.strftime("%Y-%m-%d %H:%M:%S"),
                    "to_time": end.strftime("%Y-%m-%d %H:%M:%S"),
                    "hours": arguments.hours,
                    "description": arguments.description,
                }
            ],
        }
        company = arguments.company or self.company
        if company:
            doc["company"] = company
        if self.key_field:
            doc[self.key_field] = key
        created = await self._create("Timesheet", doc, lambda: self._find_by_key("Timesheet", "note", key))
        return TimesheetPosted(name=str(created["name"]))

    # -- Frappe REST ---------------------------------------------------------------------------------------------

    def _configured(self) -> None:
        if self.problem is not None:
            raise ConnectorError(self.problem, retryable=False, code="config")

    @staticmethod
    def _path(doctype: str, name: str | None = None) -> str:
        path = f"/api/resource/{quote(doctype, safe='')}"
        return path if name is None else f"{path}/{quote(name, safe='')}"

    @staticmethod
    def _data(response: httpx.Response, kind: type[T]) -> T:
        try:
            data = response.json().get("data")
        except (ValueError, AttributeError):
            data = None
        if not isinstance(data, kind):
            raise ConnectorError(
                f"erpnext: {response.request.method} {response.request.url.path} answered without a data "
                f"{kind.__name__}",
                retryable=False,
                code="bad_response",
            )
        return data

    async def _get(self, doctype: str, name: str) -> dict[str, Any]:
        self._configured()
        return self._data(await self.http.request("GET", self._path(doctype, name)), dict)

    async def _update(self, doctype: str, name: str, values: dict[str, Any]) -> dict[str, Any]:
        self._configured()
        return self._data(await self.http.request("PUT", self._path(doctype, name), json=values), dict)

    async def _list(
        self,
        doctype: str,
        filters: list[list[Any]],
        fields: list[str],
        *,
        order_by: str = "creation desc",
        limit: int = _LIST_LIMIT,
    ) -> list[dict[str, Any]]:
        self._configured()
        params = {
            "filters": json.dumps(filters),
            "fields": json.dumps(fields),
            "order_by": order_by,
            "limit_start": "0",
            "limit_page_length": str(limit),
        }
        rows = self._data(await self.http.request("GET", self._path(doctype), params=params), list)
        return [row for row in rows if isinstance(row, dict) and row.get("name")]

    async def _find_by_key(self, doctype: str, text_field: str, key: str) -> dict[str, Any] | None:
        """The document an earlier try of this step created: by ``key_field``, or by the marker in ``text_field``."""
        if self.key_field:
            rows = await self._list(doctype, [[self.key_field, "=", key]], ["name", "docstatus"])
        else:
            marker = _marker(key)
            rows = await self._list(doctype, [[text_field, "like", f"{marker}%"]], ["name", "docstatus", text_field])
            # ``like`` treats % and _ in the key as wildcards: keep only the exact prefix.
            rows = [row for row in rows if str(row.get(text_field) or "").startswith(marker)]
        if not rows:
            return None
        # A cancelled document may have been amended: prefer one still in force.
        return next((row for row in rows if row.get("docstatus") != 2), rows[0])

    async def _create(
        self,
        doctype: str,
        doc: dict[str, Any],
        find: Callable[[], Awaitable[dict[str, Any] | None]],
        *,
        looked: bool = False,
    ) -> dict[str, Any]:
        """Insert ``doc`` unless ``find`` finds it; on a retryable failure, wait, look again, and try again."""
        self._configured()
        attempt = 0
        while True:
            attempt += 1
            if attempt > 1 or not looked:
                found = await find()
                if found is not None:
                    return found
            try:
                return self._data(await self._create_http.request("POST", self._path(doctype), json=doc), dict)
            except ConnectorError as error:
                if not error.retryable or error.code == "circuit_open" or attempt > self.policy.retries:
                    raise
                wait = error.retry_after
                if wait is None:
                    wait = min(self.policy.max_backoff_s, self.policy.backoff_s * 2 ** (attempt - 1))
                    wait *= 0.5 + random.random() / 2
                elif wait > self.policy.max_retry_after_s:
                    raise
                await self.sleep(wait)

    def _require_hold_field(self, saved: dict[str, Any], invoice: str) -> None:
        if "on_hold" not in saved:
            raise ConnectorError(
                f"erpnext: {self.invoice_doctype} has no on_hold field, so ERPNext ignored the hold on {invoice}: "
                "add on_hold, hold_comment and release_date as custom fields (Allow on Submit), or set "
                "invoice_doctype to Purchase Invoice",
                retryable=False,
                code="unsupported",
            )
