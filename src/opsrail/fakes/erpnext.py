"""A fake ERPNext site: an in-memory Frappe that answers the v1 REST API the ERPNext connector uses.

Owns ``create_app``. Routes: ``GET /api/method/frappe.auth.get_logged_user`` (and ``ping``), and
``GET|POST /api/resource/{DocType}``, ``GET|PUT /api/resource/{DocType}/{name}`` for Sales Invoice, Journal Entry,
Project, Task, Timesheet, Customer, Employee, Activity Type, Company and Account, with Frappe's behaviour where the
connector depends on it:

* token auth (``Authorization: token key:secret``, or Basic); no header is the Guest user (403
  ``PermissionError``), a wrong pair is 401 ``AuthenticationError``;
* answers wrapped as ``{"data": ...}`` (methods: ``{"message": ...}``); errors as Frappe builds them: ``exc_type``,
  ``exception`` (``frappe.exceptions.X: message``), ``exc`` and ``_server_messages`` (a JSON list of JSON
  objects) with the statuses Frappe uses: 404 ``DoesNotExistError``, 409 ``DuplicateEntryError``, 417
  ``ValidationError``, ``MandatoryError``, ``LinkValidationError``, ``UpdateAfterSubmitError``,
  ``OverlapError``;
* list GETs with ``filters`` / ``or_filters`` (JSON: ``[[field, op, value]]``, ``[[doctype, field, op, value]]``
  for child rows, or ``{field: value}``; ops ``= != like not like in not in > < >= <= is between``, compared
  case-insensitively like MariaDB), ``fields`` (default ``["name"]``), ``order_by`` (default ``modified desc``),
  ``limit_start`` and ``limit_page_length`` (default 20; 0 for all);
* fields a DocType does not have are dropped silently, submitted documents change only *Allow on Submit* fields,
  naming series (``ACC-JV-2026-00001``), link validation, mandatory fields, balanced journal entries that match
  the invoice's party and outstanding amount, overlapping timesheets.

Seeded: company ``Opsrail Demo`` (abbreviation ``OD``), accounts ``Debtors - OD`` (receivable), ``Sales - OD`` and
``Sales Returns - OD``, customers ``Acme Corp`` and ``Globex Corporation``, submitted invoices
``ACC-SINV-2026-00001`` (Acme Corp, 1200 EUR) and ``ACC-SINV-2026-00002`` (Globex, 450 EUR), a draft
``ACC-SINV-2026-00003``, employee ``HR-EMP-00001`` (Ada Lovelace), activity types ``Consulting`` and ``Planning``.

Knobs: after authentication the first ``rate_limit_first`` calls get 429 with ``Retry-After: retry_after_s``, the
next ``fail_first`` get 500, and every call waits ``delay_s`` first; the first ``lose_first_creates`` successful
creates are saved but answered 504 by a "proxy", as when an answer is lost on the way back. ``hold_fields=False``
makes Sales Invoice lack ``on_hold``/``hold_comment``/``release_date``, as in stock ERPNext; ``custom_fields`` adds
fields (e.g. ``{"Journal Entry": ["opsrail_key"]}``). State on ``app.state``: ``docs`` (DocType -> name -> document),
``requests`` (method, path, query, body of each authenticated call) and ``calls``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import hmac
import json
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse

USER = "opsrail-api@example.com"
COMPANY = "Opsrail Demo"
RECEIVABLE = "Debtors - OD"

Doc = dict[str, Any]

_GATEWAY_TIMEOUT = (
    "<html><head><title>504 Gateway Time-out</title></head><body><h1>504 Gateway Time-out</h1></body></html>"
)

_STANDARD = frozenset({"name", "owner", "creation", "modified", "modified_by", "docstatus", "idx", "doctype"})
_CHILD_STANDARD = _STANDARD | {"parent", "parentfield", "parenttype"}
_LABELS = {
    "party": "Party",
    "debit_to": "Debit To",
    "time_logs": "Time Sheets",
    "accounts": "Accounting Entries",
    "parent_project": "Project",
}


class FrappeError(Exception):
    """Raised inside the fake; answered as Frappe answers ``frappe.throw(message, exc)``."""

    def __init__(self, status: int, exc_type: str, message: str, module: str = "frappe.exceptions") -> None:
        super().__init__(message)
        self.status = status
        self.exc_type = exc_type
        self.message = message
        self.module = module


def frappe_error(
    status: int,
    exc_type: str,
    message: str,
    *,
    module: str = "frappe.exceptions",
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """Frappe's v1 error body: ``exc_type``, ``exception``, ``exc`` (traceback list) and ``_server_messages``."""
    exception = f"{module}.{exc_type}: {message}"
    server_message = {
        "message": message,
        "title": "Message",
        "indicator": "red",
        "raise_exception": 1,
        "__frappe_exc_id": uuid.uuid4().hex[:10],
    }
    body = {
        "exc_type": exc_type,
        "exception": exception,
        "exc": json.dumps([f'Traceback (most recent call last):\n  File "frappe/app.py", line 114\n{exception}\n']),
        "_server_messages": json.dumps([json.dumps(server_message)]),
    }
    return JSONResponse(body, status_code=status, headers=headers)


def _label(fieldname: str) -> str:
    return _LABELS.get(fieldname) or fieldname.replace("_", " ").title()


@dataclass
class _Meta:
    fields: set[str]
    mandatory: tuple[str, ...] = ()
    links: dict[str, str] = field(default_factory=dict)  # "@field": the DocType is that field's value
    tables: dict[str, str] = field(default_factory=dict)  # table field -> child DocType
    naming: str = ""  # "field:<fieldname>", or a series: "{year}" and a run of "#"
    submittable: bool = False
    allow_on_submit: set[str] = field(default_factory=set)
    is_child: bool = False


def _metas(hold_fields: bool, custom_fields: Mapping[str, Iterable[str]]) -> dict[str, _Meta]:
    hold = {"on_hold", "hold_comment", "release_date"} if hold_fields else set()
    metas = {
        "Company": _Meta({"company_name", "abbr", "default_currency"}, ("company_name",), naming="field:company_name"),
        "Account": _Meta(
            {"account_name", "company", "account_type", "root_type", "account_currency", "is_group"},
            ("account_name", "company"),
            links={"company": "Company"},
        ),
        "Customer": _Meta(
            {"customer_name", "customer_type", "customer_group", "territory", "default_currency", "disabled"},
            ("customer_name",),
            naming="field:customer_name",
        ),
        "Employee": _Meta(
            {"employee_name", "first_name", "company", "status", "user_id"},
            ("first_name", "company"),
            links={"company": "Company"},
            naming="HR-EMP-#####",
        ),
        "Activity Type": _Meta(
            {"activity_type", "billing_rate", "costing_rate", "disabled"},
            ("activity_type",),
            naming="field:activity_type",
        ),
        "Sales Invoice": _Meta(
            {
                "title",
                "customer",
                "customer_name",
                "company",
                "posting_date",
                "due_date",
                "currency",
                "party_account_currency",
                "debit_to",
                "grand_total",
                "outstanding_amount",
                "status",
                "remarks",
                *hold,
            },
            ("customer", "company", "currency", "debit_to"),
            links={"customer": "Customer", "company": "Company", "debit_to": "Account"},
            naming="ACC-SINV-{year}-#####",
            submittable=True,
            allow_on_submit={"title", *hold},
        ),
        "Journal Entry": _Meta(
            {
                "title",
                "voucher_type",
                "company",
                "posting_date",
                "user_remark",
                "cheque_no",
                "cheque_date",
                "multi_currency",
                "total_debit",
                "total_credit",
                "accounts",
            },
            ("voucher_type", "company", "posting_date", "accounts"),
            links={"company": "Company"},
            tables={"accounts": "Journal Entry Account"},
            naming="ACC-JV-{year}-#####",
            submittable=True,
            allow_on_submit={"title"},
        ),
        "Journal Entry Account": _Meta(
            {
                "account",
                "party_type",
                "party",
                "debit_in_account_currency",
                "credit_in_account_currency",
                "debit",
                "credit",
                "reference_type",
                "reference_name",
                "user_remark",
                "cost_center",
            },
            ("account",),
            links={"account": "Account", "party": "@party_type", "reference_name": "@reference_type"},
            is_child=True,
        ),
        "Project": _Meta(
            {
                "project_name",
                "status",
                "customer",
                "company",
                "expected_start_date",
                "expected_end_date",
                "percent_complete",
                "notes",
                "is_active",
            },
            ("project_name", "company"),
            links={"customer": "Customer", "company": "Company"},
            naming="PROJ-####",
        ),
        "Task": _Meta(
            {"subject", "project", "status", "priority", "exp_start_date", "exp_end_date", "description", "company"},
            ("subject",),
            links={"project": "Project", "company": "Company"},
            naming="TASK-{year}-#####",
        ),
        "Timesheet": _Meta(
            {
                "company",
                "employee",
                "employee_name",
                "parent_project",
                "customer",
                "status",
                "start_date",
                "end_date",
                "total_hours",
                "note",
                "time_logs",
            },
            ("time_logs",),
            links={"company": "Company", "employee": "Employee", "parent_project": "Project", "customer": "Customer"},
            tables={"time_logs": "Timesheet Detail"},
            naming="TS-{year}-#####",
            submittable=True,
        ),
        "Timesheet Detail": _Meta(
            {"activity_type", "from_time", "to_time", "hours", "project", "task", "description", "is_billable"},
            links={"activity_type": "Activity Type", "project": "Project", "task": "Task"},
            is_child=True,
        ),
    }
    for doctype, names in custom_fields.items():
        metas[doctype].fields.update(names)
    return metas


def _seed() -> dict[str, dict[str, Doc]]:
    stamp = "2026-01-05 09:00:00.000000"

    def doc(doctype: str, name: str, docstatus: int = 0, **values: Any) -> tuple[str, Doc]:
        return name, {
            "name": name,
            "doctype": doctype,
            "owner": "Administrator",
            "creation": stamp,
            "modified": stamp,
            "modified_by": "Administrator",
            "docstatus": docstatus,
            "idx": 0,
            **values,
        }

    def invoice(name: str, customer: str, total: float, docstatus: int) -> tuple[str, Doc]:
        return doc(
            "Sales Invoice",
            name,
            docstatus,
            title=customer,
            customer=customer,
            customer_name=customer,
            company=COMPANY,
            posting_date="2026-01-05",
            due_date="2026-02-04",
            currency="EUR",
            party_account_currency="EUR",
            debit_to=RECEIVABLE,
            grand_total=total,
            outstanding_amount=total,
            status="Unpaid" if docstatus == 1 else "Draft",
            remarks=None,
            on_hold=0,
            hold_comment=None,
            release_date=None,
        )

    return {
        "Company": dict([doc("Company", COMPANY, company_name=COMPANY, abbr="OD", default_currency="EUR")]),
        "Account": dict(
            doc("Account", name, account_name=name[:-5], company=COMPANY, account_type=kind, account_currency="EUR")
            for name, kind in (
                (RECEIVABLE, "Receivable"),
                ("Sales - OD", "Income Account"),
                ("Sales Returns - OD", "Income Account"),
            )
        ),
        "Customer": dict(
            doc("Customer", name, customer_name=name, customer_type="Company", default_currency="EUR", disabled=0)
            for name in ("Acme Corp", "Globex Corporation")
        ),
        "Employee": dict(
            [
                doc(
                    "Employee",
                    "HR-EMP-00001",
                    employee_name="Ada Lovelace",
                    first_name="Ada",
                    company=COMPANY,
                    status="Active",
                )
            ]
        ),
        "Activity Type": dict(
            doc("Activity Type", name, activity_type=name, billing_rate=120.0, costing_rate=80.0, disabled=0)
            for name in ("Consulting", "Planning")
        ),
        "Sales Invoice": dict(
            [
                invoice("ACC-SINV-2026-00001", "Acme Corp", 1200.0, 1),
                invoice("ACC-SINV-2026-00002", "Globex Corporation", 450.0, 1),
                invoice("ACC-SINV-2026-00003", "Acme Corp", 80.0, 0),
            ]
        ),
        "Journal Entry": {},
        "Project": {},
        "Task": {},
        "Timesheet": {},
    }


# -- list queries ---------------------------------------------------------------------------------------------


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _key(value: Any) -> tuple[int, float, str]:
    """Sorts and compares like SQL would: numbers as numbers, text case-insensitively, NULL as empty text."""
    number = _number(value)
    if number is not None and not isinstance(value, str):
        return (0, number, "")
    return (1, 0.0, "" if value is None else str(value).casefold())


def _field_key(name: str, doc: Doc) -> tuple[int, float, str]:
    return _key(doc.get(name))


def _equal(actual: Any, expected: Any) -> bool:
    a, b = _number(actual), _number(expected)
    if a is not None and b is not None:
        return a == b
    return ("" if actual is None else str(actual)).casefold() == ("" if expected is None else str(expected)).casefold()


def _like(actual: Any, pattern: Any) -> bool:
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in str(pattern))
    return re.fullmatch(regex, "" if actual is None else str(actual), re.IGNORECASE | re.DOTALL) is not None


def _compare(actual: Any, op: str, expected: Any) -> bool:
    if op in ("=", "=="):
        return _equal(actual, expected)
    if op in ("!=", "<>"):
        return not _equal(actual, expected)
    if op == "like":
        return _like(actual, expected)
    if op == "not like":
        return not _like(actual, expected)
    if op in ("in", "not in"):
        options = expected if isinstance(expected, list) else [v.strip() for v in str(expected).split(",")]
        found = any(_equal(actual, option) for option in options)
        return found if op == "in" else not found
    if op == "is":
        present = actual not in (None, "")
        return present if str(expected).lower() == "set" else not present
    if op == "between" and isinstance(expected, list) and len(expected) == 2:
        return _key(expected[0]) <= _key(actual) <= _key(expected[1])
    comparisons: dict[str, Callable[[Any, Any], bool]] = {
        ">": lambda a, b: a > b,
        "<": lambda a, b: a < b,
        ">=": lambda a, b: a >= b,
        "<=": lambda a, b: a <= b,
    }
    if op in comparisons:
        a, b = _number(actual), _number(expected)
        if a is not None and b is not None:
            return comparisons[op](a, b)
        return comparisons[op](_key(actual)[2], _key(expected)[2])
    raise FrappeError(417, "ValidationError", f"Operator must be one of {', '.join(sorted(comparisons))}, =, like")


Condition = tuple[str | None, str, str, Any]  # (child DocType or None, field, operator, value)


def _conditions(raw: str | None, doctype: str, metas: Mapping[str, _Meta]) -> list[Condition]:
    if not raw:
        return []
    try:
        parsed = json.loads(raw)
    except ValueError:
        raise FrappeError(417, "ValidationError", "Filters must be valid JSON") from None
    items: list[list[Any]] = []
    if isinstance(parsed, dict):
        for name, value in parsed.items():
            if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
                items.append([name, value[0], value[1]])
            else:
                items.append([name, "=", value])
    elif isinstance(parsed, list):
        items = [item for item in parsed if isinstance(item, list)]
        if len(items) != len(parsed):
            raise FrappeError(417, "ValidationError", "Each filter must be a list: [field, operator, value]")
    else:
        raise FrappeError(417, "ValidationError", "Filters must be a list or an object")
    meta = metas[doctype]
    conditions: list[Condition] = []
    for item in items:
        if len(item) == 4:
            target, name, op, value = item
        elif len(item) == 3:
            target, (name, op, value) = doctype, item
        elif len(item) == 2:
            target, name, op, value = doctype, item[0], "=", item[1]
        else:
            raise FrappeError(417, "ValidationError", f"Invalid filter: {item}")
        child = None if target == doctype else str(target)
        if child is not None and child not in meta.tables.values():
            raise FrappeError(417, "DataError", f"Field not permitted in query: {target}.{name}")
        fields = metas[child].fields | _CHILD_STANDARD if child else meta.fields | _STANDARD
        if name not in fields:
            raise FrappeError(417, "DataError", f"Field not permitted in query: {name}")
        conditions.append((child, str(name), str(op).strip().lower(), value))
    return conditions


def _holds(doc: Doc, condition: Condition, meta: _Meta) -> bool:
    child, name, op, value = condition
    if child is None:
        return _compare(doc.get(name), op, value)
    rows = [row for table, kind in meta.tables.items() if kind == child for row in doc.get(table) or []]
    return any(_compare(row.get(name), op, value) for row in rows)


# -- the app --------------------------------------------------------------------------------------------------


def create_app(
    *,
    api_key: str = "key",
    api_secret: str = "secret",  # noqa: S107 (a fake's test credential)
    rate_limit_first: int = 0,
    fail_first: int = 0,
    delay_s: float = 0.0,
    retry_after_s: float = 1.0,
    hold_fields: bool = True,
    custom_fields: Mapping[str, Iterable[str]] | None = None,
    lose_first_creates: int = 0,
) -> FastAPI:
    """The fake site; see the module's documentation for its routes, seed data and knobs."""
    app = FastAPI(title="Fake ERPNext", docs_url=None, redoc_url=None, openapi_url=None)
    lock = threading.Lock()
    metas = _metas(hold_fields, custom_fields or {})
    docs = {
        doctype: {
            name: {k: v for k, v in doc.items() if k in metas[doctype].fields | _STANDARD} for name, doc in rows.items()
        }
        for doctype, rows in _seed().items()
    }
    counters: dict[str, int] = {}
    clock = {"last": datetime.now(UTC)}
    app.state.docs = docs
    app.state.requests = []
    app.state.calls = 0
    lost = {"count": 0}

    def now() -> str:
        moment = max(datetime.now(UTC), clock["last"] + timedelta(microseconds=1))
        clock["last"] = moment
        return moment.strftime("%Y-%m-%d %H:%M:%S.%f")

    def authorised(request: Request) -> JSONResponse | None:
        header = request.headers.get("authorization", "").strip()
        if not header:
            return frappe_error(403, "PermissionError", "Not permitted")
        scheme, _, credentials = header.partition(" ")
        pair = credentials.strip()
        if scheme.lower() == "basic":
            try:
                pair = base64.b64decode(pair, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                pair = ""
        elif scheme.lower() != "token":
            pair = ""
        given_key, _, given_secret = pair.partition(":")
        if not (hmac.compare_digest(given_key, api_key) and hmac.compare_digest(given_secret, api_secret)):
            return frappe_error(401, "AuthenticationError", "Invalid API key or API secret")
        return None

    async def gate(request: Request, body: Any = None) -> JSONResponse | None:
        denied = authorised(request)
        if denied is not None:
            return denied
        with lock:
            app.state.calls += 1
            number = app.state.calls
            app.state.requests.append(
                {
                    "method": request.method,
                    "path": request.url.path,
                    "query": dict(request.query_params),
                    "body": body,
                }
            )
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        if number <= rate_limit_first:
            return frappe_error(
                429,
                "TooManyRequestsError",
                "You hit the rate limit because of too many requests. Please try after sometime.",
                headers={"Retry-After": f"{retry_after_s:g}"},
            )
        if number <= rate_limit_first + fail_first:
            return frappe_error(
                500,
                "OperationalError",
                "(2013, 'Lost connection to MySQL server during query')",
                module="pymysql.err",
            )
        return None

    async def json_body(request: Request) -> Any:
        raw = await request.body()
        if not raw:
            return {}
        try:
            return json.loads(raw)
        except ValueError:
            return None

    def meta_of(doctype: str) -> _Meta:
        meta = metas.get(doctype)
        if meta is None or meta.is_child:
            raise FrappeError(404, "DoesNotExistError", f"DocType {doctype} not found")
        return meta

    def get_doc(doctype: str, name: str) -> Doc:
        meta_of(doctype)
        doc = docs[doctype].get(name)
        if doc is None:
            raise FrappeError(404, "DoesNotExistError", f"{doctype} {name} not found")
        return doc

    def new_name(doctype: str, meta: _Meta, doc: Doc) -> str:
        if meta.naming.startswith("field:"):
            value = doc.get(meta.naming[6:])
            if not value:
                raise FrappeError(
                    417, "MandatoryError", f"Error: Value missing for {doctype}: {_label(meta.naming[6:])}"
                )
            if str(value) in docs[doctype]:
                raise FrappeError(409, "DuplicateEntryError", f"{doctype} {value} already exists")
            return str(value)
        series = meta.naming.replace("{year}", str(datetime.now(UTC).year))
        digits = series.count("#")
        prefix = series.replace("#", "")
        while True:
            counters[prefix] = counters.get(prefix, 0) + 1
            name = f"{prefix}{counters[prefix]:0{digits}d}"
            if name not in docs[doctype]:
                return name

    def clean(meta: _Meta, values: Mapping[str, Any]) -> Doc:
        """Keep the fields the DocType has (Frappe drops the rest silently); child tables row by row."""
        kept: Doc = {}
        for key, value in values.items():
            if key in meta.tables:
                if not isinstance(value, list):
                    raise FrappeError(417, "ValidationError", f"{_label(key)} must be a list of rows")
                child = metas[meta.tables[key]]
                kept[key] = [
                    {k: v for k, v in row.items() if k in child.fields} for row in value if isinstance(row, dict)
                ]
            elif key in meta.fields:
                kept[key] = value
        return kept

    def check_rows(doctype: str, meta: _Meta, doc: Doc) -> None:
        """Frappe's order: mandatory fields, then links, for the document and each child row."""
        for name in meta.mandatory:
            if doc.get(name) in (None, "", []):
                raise FrappeError(417, "MandatoryError", f"Error: Value missing for {doctype}: {_label(name)}")
        for table, child_type in meta.tables.items():
            child = metas[child_type]
            for idx, row in enumerate(doc.get(table) or [], 1):
                for name in child.mandatory:
                    if row.get(name) in (None, ""):
                        raise FrappeError(
                            417, "MandatoryError", f"Error: Value missing for {child_type}: Row #{idx}: {_label(name)}"
                        )
        links: list[tuple[str, Doc, str, str]] = [("", doc, name, target) for name, target in meta.links.items()]
        for table, child_type in meta.tables.items():
            for idx, row in enumerate(doc.get(table) or [], 1):
                links += [(f"Row #{idx}: ", row, name, target) for name, target in metas[child_type].links.items()]
        for where, values, name, target in links:
            value = values.get(name)
            if value in (None, ""):
                continue
            kind = str(values.get(target[1:]) or "") if target.startswith("@") else target
            if kind not in docs or str(value) not in docs[kind]:
                raise FrappeError(417, "LinkValidationError", f"Could not find {where}{_label(name)}: {value}")

    def validate(doctype: str, doc: Doc) -> Callable[[], None]:
        """DocType rules; returns what submitting does to other documents (run once the document is saved)."""
        if doctype == "Sales Invoice":
            release = doc.get("release_date")
            if doc.get("on_hold") and release and str(release) < date.today().isoformat():
                raise FrappeError(417, "ValidationError", "Release date must be in the future")
        elif doctype == "Project":
            start, end = doc.get("expected_start_date"), doc.get("expected_end_date")
            if start and end and str(end) < str(start):
                raise FrappeError(417, "ValidationError", "Expected End Date can not be less than Expected Start Date")
            doc.setdefault("status", "Open")
            doc.setdefault("percent_complete", 0)
        elif doctype == "Task":
            start, end = doc.get("exp_start_date"), doc.get("exp_end_date")
            if start and end and str(end) < str(start):
                raise FrappeError(
                    417, "ValidationError", "'Expected Start Date' can not be greater than 'Expected End Date'"
                )
            doc.setdefault("status", "Open")
        elif doctype == "Journal Entry":
            return validate_journal_entry(doc)
        elif doctype == "Timesheet":
            validate_timesheet(doc)
        return lambda: None

    def validate_journal_entry(doc: Doc) -> Callable[[], None]:
        total_debit = total_credit = 0.0
        settled: list[tuple[Doc, float]] = []
        for idx, row in enumerate(doc.get("accounts") or [], 1):
            debit = _number(row.get("debit_in_account_currency") or 0)
            credit = _number(row.get("credit_in_account_currency") or 0)
            if debit is None or credit is None:
                raise FrappeError(417, "ValidationError", f"Row #{idx}: Debit and Credit must be numbers")
            if debit < 0 or credit < 0:
                raise FrappeError(417, "ValidationError", f"Row #{idx}: Debit and Credit amounts cannot be negative")
            if debit and credit:
                raise FrappeError(417, "ValidationError", "You cannot credit and debit same account at the same time")
            if not debit and not credit:
                raise FrappeError(417, "ValidationError", f"Row {idx}: Both Debit and Credit values cannot be zero")
            account = docs["Account"][row["account"]]
            if account.get("account_type") == "Receivable" and not (row.get("party_type") and row.get("party")):
                raise FrappeError(
                    417,
                    "ValidationError",
                    f"Row #{idx}: Party Type and Party is required for Receivable / Payable account {row['account']}",
                )
            if row.get("reference_type") == "Sales Invoice":
                invoice = docs["Sales Invoice"][row["reference_name"]]
                if invoice["docstatus"] != 1:
                    raise FrappeError(417, "ValidationError", f"Row #{idx}: {invoice['name']} is not submitted")
                if row.get("party") != invoice["customer"] or row["account"] != invoice["debit_to"]:
                    raise FrappeError(
                        417,
                        "ValidationError",
                        f"Row #{idx}: Party / Account does not match with Customer / Debit To in Sales Invoice "
                        f"{invoice['name']}",
                    )
                if credit - debit > float(invoice.get("outstanding_amount") or 0) + 0.005:
                    raise FrappeError(
                        417,
                        "ValidationError",
                        f"Row #{idx}: Amount {credit - debit:.2f} cannot be more than the outstanding amount "
                        f"{float(invoice.get('outstanding_amount') or 0):.2f} of Sales Invoice {invoice['name']}",
                    )
                settled.append((invoice, credit - debit))
            row["debit"], row["credit"] = debit, credit
            row["debit_in_account_currency"], row["credit_in_account_currency"] = debit, credit
            total_debit += debit
            total_credit += credit
        if round(total_debit - total_credit, 2):
            raise FrappeError(
                417,
                "ValidationError",
                "Total Debit must be equal to Total Credit. The difference is "
                f"{round(total_debit - total_credit, 2):.2f}",
            )
        doc["total_debit"], doc["total_credit"] = round(total_debit, 2), round(total_credit, 2)
        doc.setdefault("title", next((r.get("party") for r in doc["accounts"] if r.get("party")), None))

        def settle() -> None:
            if doc["docstatus"] == 1:
                for invoice, amount in settled:
                    invoice["outstanding_amount"] = round(float(invoice["outstanding_amount"]) - amount, 2)

        return settle

    def validate_timesheet(doc: Doc) -> None:
        spans: list[tuple[datetime, datetime]] = []
        for idx, row in enumerate(doc.get("time_logs") or [], 1):
            hours = _number(row.get("hours"))
            if hours is None or hours <= 0:
                raise FrappeError(417, "ValidationError", f"Row {idx}: Hours value must be greater than zero.")
            try:
                start = datetime.fromisoformat(str(row.get("from_time")))
            except ValueError:
                raise FrappeError(417, "ValidationError", f"Row {idx}: From Time is required") from None
            end = start + timedelta(hours=hours)
            row["from_time"] = start.strftime("%Y-%m-%d %H:%M:%S")
            row["to_time"] = end.strftime("%Y-%m-%d %H:%M:%S")
            row["hours"] = hours
            spans.append((start, end))
        employee = doc.get("employee")
        if employee:
            doc["employee_name"] = docs["Employee"][employee].get("employee_name")
            for other in docs["Timesheet"].values():
                if other["name"] == doc.get("name") or other.get("employee") != employee or other["docstatus"] == 2:
                    continue
                for row in other.get("time_logs") or []:
                    start, end = datetime.fromisoformat(row["from_time"]), datetime.fromisoformat(row["to_time"])
                    for idx, (mine_start, mine_end) in enumerate(spans, 1):
                        if mine_start < end and start < mine_end:
                            raise FrappeError(
                                417,
                                "OverlapError",
                                f"Row {idx}: From Time and To Time of {doc['employee_name']} is overlapping with "
                                f"{other['name']}",
                                module="erpnext.projects.doctype.timesheet.timesheet",
                            )
        doc["total_hours"] = round(sum((end - start).total_seconds() / 3600 for start, end in spans), 6)
        if spans:
            doc["start_date"] = min(start for start, _ in spans).date().isoformat()
            doc["end_date"] = max(end for _, end in spans).date().isoformat()
        doc["status"] = {0: "Draft", 1: "Submitted", 2: "Cancelled"}[doc.get("docstatus", 0)]

    def stamp_children(doctype: str, meta: _Meta, doc: Doc, moment: str) -> None:
        for table, child_type in meta.tables.items():
            for idx, row in enumerate(doc.get(table) or [], 1):
                row.setdefault("name", uuid.uuid4().hex[:10])
                row.update(
                    doctype=child_type,
                    parent=doc["name"],
                    parentfield=table,
                    parenttype=doctype,
                    idx=idx,
                    docstatus=doc["docstatus"],
                )
                row.setdefault("creation", moment)
                row["modified"] = moment

    def insert(doctype: str, body: Any) -> Doc:
        meta = meta_of(doctype)
        if not isinstance(body, dict):
            raise FrappeError(417, "ValidationError", "The request body must be a JSON object")
        docstatus = body.get("docstatus", 0)
        if docstatus not in (0, 1) or (docstatus == 1 and not meta.submittable):
            raise FrappeError(417, "ValidationError", f"Cannot create a {doctype} with docstatus {docstatus}")
        doc = clean(meta, body)
        doc["docstatus"] = docstatus
        check_rows(doctype, meta, doc)
        after = validate(doctype, doc)
        with lock:
            name = new_name(doctype, meta, doc)
            moment = now()
            doc.update(
                name=name,
                doctype=doctype,
                owner=USER,
                creation=moment,
                modified=moment,
                modified_by=USER,
                idx=0,
            )
            stamp_children(doctype, meta, doc, moment)
            docs[doctype][name] = doc
            after()
        return doc

    def update(doctype: str, name: str, body: Any) -> Doc:
        meta = meta_of(doctype)
        current = get_doc(doctype, name)
        if not isinstance(body, dict):
            raise FrappeError(417, "ValidationError", "The request body must be a JSON object")
        if current["docstatus"] == 2:
            raise FrappeError(417, "ValidationError", "Cannot edit cancelled document")
        docstatus = body.get("docstatus", current["docstatus"])
        if (current["docstatus"], docstatus) not in ((0, 0), (0, 1), (1, 1), (1, 2)) or (
            docstatus == 1 and not meta.submittable
        ):
            raise FrappeError(
                417, "ValidationError", f"Cannot change docstatus from {current['docstatus']} to {docstatus}"
            )
        values = clean(meta, body)
        if current["docstatus"] == 1 and docstatus == 1:
            for key, value in values.items():
                if key not in meta.allow_on_submit and current.get(key) != value:
                    raise FrappeError(
                        417,
                        "UpdateAfterSubmitError",
                        f"Not allowed to change {_label(key)} after submission from {current.get(key)} to {value}",
                    )
        doc = {**copy.deepcopy(current), **values, "docstatus": docstatus}
        check_rows(doctype, meta, doc)
        after = validate(doctype, doc) if docstatus != 2 else (lambda: None)
        with lock:
            moment = now()
            doc.update(modified=moment, modified_by=USER)
            stamp_children(doctype, meta, doc, moment)
            docs[doctype][name] = doc
            if (current["docstatus"], docstatus) == (0, 1):
                after()
        return doc

    def query(doctype: str, params: Mapping[str, str]) -> list[Doc]:
        meta = meta_of(doctype)
        conditions = _conditions(params.get("filters"), doctype, metas)
        alternatives = _conditions(params.get("or_filters"), doctype, metas)
        try:
            fields = json.loads(params.get("fields") or '["name"]')
            start = int(params.get("limit_start") or params.get("start") or 0)
            length = int(params.get("limit_page_length") or params.get("limit") or params.get("page_length") or 20)
        except ValueError:
            raise FrappeError(417, "ValidationError", "fields must be JSON; limits must be integers") from None
        if isinstance(fields, str):
            fields = [fields]
        if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
            raise FrappeError(417, "ValidationError", "fields must be a JSON list of field names")
        columns = (meta.fields - set(meta.tables)) | _STANDARD
        if "*" in fields:
            fields = sorted(columns)
        for name in fields:
            if name not in columns:
                raise FrappeError(417, "DataError", f"Field not permitted in query: {name}")
        order: list[tuple[str, bool]] = []
        for part in (params.get("order_by") or "modified desc").split(","):
            words = part.replace("`", "").split()
            if not words:
                continue
            name = words[0].split(".")[-1]
            if name not in columns or (len(words) > 1 and words[1].lower() not in ("asc", "desc")) or len(words) > 2:
                raise FrappeError(417, "DataError", f"Invalid order_by: {part.strip()}")
            order.append((name, len(words) > 1 and words[1].lower() == "desc"))
        with lock:
            rows = [
                doc
                for doc in docs[doctype].values()
                if all(_holds(doc, c, meta) for c in conditions)
                and (not alternatives or any(_holds(doc, c, meta) for c in alternatives))
            ]
        for name, descending in reversed(order):
            rows.sort(key=partial(_field_key, name), reverse=descending)
        page = rows[start:] if length <= 0 else rows[start : start + length]
        return [{name: doc.get(name) for name in fields} for doc in page]

    def answer(work: Callable[[], Any], wrap: str = "data") -> JSONResponse:
        try:
            return JSONResponse({wrap: work()})
        except FrappeError as exc:
            return frappe_error(exc.status, exc.exc_type, exc.message, module=exc.module)

    @app.get("/api/method/ping")
    async def ping() -> Any:
        return {"message": "pong"}

    @app.get("/api/method/frappe.auth.get_logged_user")
    async def logged_user(request: Request) -> Any:
        blocked = await gate(request)
        return blocked or JSONResponse({"message": USER})

    @app.get("/api/resource/{doctype}")
    async def list_docs(doctype: str, request: Request) -> Any:
        blocked = await gate(request)
        return blocked or answer(lambda: query(doctype, request.query_params))

    @app.post("/api/resource/{doctype}")
    async def create_doc(doctype: str, request: Request) -> Any:
        body = await json_body(request)
        blocked = await gate(request, body)
        if blocked is not None:
            return blocked
        response = answer(lambda: insert(doctype, body))
        with lock:
            lose = response.status_code == 200 and lost["count"] < lose_first_creates
            lost["count"] += int(lose)
        if lose:  # saved, but the answer never reaches the caller: what a proxy timing out looks like
            return HTMLResponse(_GATEWAY_TIMEOUT, status_code=504)
        return response

    @app.get("/api/resource/{doctype}/{name:path}")
    async def read_doc(doctype: str, name: str, request: Request) -> Any:
        blocked = await gate(request)
        return blocked or answer(lambda: get_doc(doctype, name))

    @app.put("/api/resource/{doctype}/{name:path}")
    async def update_doc(doctype: str, name: str, request: Request) -> Any:
        body = await json_body(request)
        blocked = await gate(request, body)
        return blocked or answer(lambda: update(doctype, name, body))

    return app
