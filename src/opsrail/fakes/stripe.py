"""A fake Stripe API (v1) with the subscriptions, invoices and credit notes the Stripe connector works on.

Owns ``create_app``. The state is in memory on ``app.state`` (``customers``, ``subscriptions``, ``invoices``,
``credit_notes``: dicts by id holding Stripe-shaped objects), seeded with customer ``cus_123``; subscription
``sub_123`` with its open invoice ``in_123`` of 10000 (USD cents; one line ``il_123``); and subscription ``sub_456``
with its paid invoice ``in_456`` of 5000 (line ``il_456``). ``app.state.requests`` lists every authenticated call
(method, path, decoded parameters, idempotency key) and ``app.state.replays`` counts idempotent replays.

Endpoints: ``POST/GET /v1/subscriptions/{id}`` (``pause_collection`` and ``metadata``), ``GET /v1/invoices/{id}``,
``POST/GET /v1/credit_notes`` (list: ``invoice``, ``limit``, ``starting_after``), ``GET /v1/credit_notes/{id}``,
``GET /v1/balance``. As in Stripe's published API:

- Bodies are form-encoded with bracketed nested keys (``lines[0][amount]``); a field sent empty is unset.
- Errors are ``{"error": {"type", "code", "message", "param"}}``: 400 for bad parameters (``parameter_unknown``,
  ``parameter_missing``, ``parameter_invalid_integer``, amounts a credit note cannot have), 401 without a valid key
  (Bearer, or Basic with the key as user name), 404 ``resource_missing``; every answer has a ``Request-Id``.
- Idempotency: a POST's ``Idempotency-Key`` saves the status and body of its first answer once the endpoint starts
  executing (errors included; parameter validation errors are not saved). The same key with the same endpoint and
  parameters replays that answer with ``Idempotent-Replayed: true``; with other parameters or another endpoint it
  is refused with 400 ``idempotency_error``; while the first request still runs, with 409 ``idempotency_error``.
- Credit notes: the total first lowers the invoice's ``amount_remaining``; any part above it (``post_payment_amount``)
  must equal ``credit_amount + refund_amount + out_of_band_amount``, and all credit notes together cannot exceed the
  invoice's total.

Knobs to fail on purpose: the first ``rate_limit_first`` authenticated calls get 429 (``rate_limit``, with
``Retry-After: retry_after_s``), the next ``fail_first`` get 500 ``api_error``; both carry ``Stripe-Should-Retry:
true`` and, like an answer from Stripe's edge, come before the idempotency layer, so nothing is saved for them.
A call past those waits ``delay_s`` before it executes; a POST waits after its key is marked in progress, so a retry
meanwhile gets the 409. Simplifications: one currency,
no taxes or discounts, a credit note for an ``amount`` has no lines, and invoices never change status.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

BEHAVIORS = ("keep_as_draft", "mark_uncollectible", "void")
REASONS = ("duplicate", "fraudulent", "order_change", "product_unsatisfactory")
CREDIT_NOTE_PARAMS = {
    "invoice",
    "amount",
    "lines",
    "reason",
    "memo",
    "metadata",
    "credit_amount",
    "refund_amount",
    "out_of_band_amount",
}
LINE_PARAMS = {"type", "invoice_line_item", "amount", "quantity", "unit_amount", "description"}
_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_SUBKEY = re.compile(r"\[([^\[\]]*)\]")
_INTEGER = re.compile(r"-?[0-9]{1,18}")


class StripeError(Exception):
    """An error answer. ``saved``: whether the idempotency layer keeps it (not for parameter validation)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        saved: bool = True,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.saved = saved
        error: dict[str, Any] = {"type": type_, "message": message}
        if code:
            error["code"] = code
            error["doc_url"] = f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}"
        if param:
            error["param"] = param
        self.body: dict[str, Any] = {"error": error}


def _invalid(message: str, *, param: str | None = None, code: str | None = None) -> StripeError:
    return StripeError(400, message, param=param, code=code, saved=False)


def parse_form(body: str) -> dict[str, Any]:
    """Stripe's form encoding back into objects: ``a[b]=1`` -> ``{"a": {"b": "1"}}``, ``a[0][b]`` -> a list."""
    root: dict[str, Any] = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        match = _KEY.match(key)
        if match is None:
            raise _invalid(f"Invalid parameter name: {key}", param=key)
        path = [match.group(1), *_SUBKEY.findall(match.group(2))]
        node = root
        for position, part in enumerate(path):
            last = position == len(path) - 1
            if last:
                if isinstance(node.get(part), dict):
                    raise _invalid(f"Invalid {key}: a value and an object under one name", param=key)
                node[part] = value
                break
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise _invalid(f"Invalid {key}: a value and an object under one name", param=key)
            node = child
    parsed = _lists(root)
    if not isinstance(parsed, dict):  # only numbers as top-level names
        raise _invalid("Invalid parameter names: top-level parameters are named, not numbered")
    return parsed


def _lists(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    converted = {key: _lists(item) for key, item in value.items()}
    if converted and all(key.isdigit() for key in converted):
        return [converted[key] for key in sorted(converted, key=int)]
    return converted


def _integer(params: dict[str, Any], name: str, label: str | None = None) -> int | None:
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        return int(value)
    raise _invalid(f"Invalid integer: {value}", param=label or name, code="parameter_invalid_integer")


def _unknown(params: dict[str, Any], allowed: set[str], prefix: str = "") -> None:
    for name in params:
        if name not in allowed:
            label = f"{prefix}[{name}]" if prefix else name
            raise _invalid(f"Received unknown parameter: {label}", param=label, code="parameter_unknown")


@dataclass
class _Saved:
    method: str
    path: str
    params: dict[str, Any]
    request_id: str
    status: int | None = None  # None while the first request runs
    body: dict[str, Any] = field(default_factory=dict)


def _seed(now: int) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    customers = {
        "cus_123": {
            "id": "cus_123",
            "object": "customer",
            "name": "Acme Ltd",
            "email": "billing@acme.example",
            "balance": 0,
            "currency": "usd",
            "created": now - 86400 * 90,
            "livemode": False,
            "metadata": {},
        }
    }
    subscriptions: dict[str, Any] = {}
    invoices: dict[str, Any] = {}
    for number, (sub, invoice, line, amount, status) in enumerate(
        [("sub_123", "in_123", "il_123", 10000, "open"), ("sub_456", "in_456", "il_456", 5000, "paid")], start=1
    ):
        subscriptions[sub] = {
            "id": sub,
            "object": "subscription",
            "customer": "cus_123",
            "status": "active",
            "collection_method": "charge_automatically",
            "currency": "usd",
            "pause_collection": None,
            "latest_invoice": invoice,
            "cancel_at_period_end": False,
            "created": now - 86400 * 60,
            "start_date": now - 86400 * 60,
            "livemode": False,
            "metadata": {},
        }
        paid = amount if status == "paid" else 0
        invoices[invoice] = {
            "id": invoice,
            "object": "invoice",
            "number": f"FAKE0001-{number:04d}",
            "customer": "cus_123",
            "parent": {"type": "subscription_details", "subscription_details": {"subscription": sub}},
            "status": status,
            "currency": "usd",
            "subtotal": amount,
            "total": amount,
            "amount_due": amount,
            "amount_paid": paid,
            "amount_remaining": amount - paid,
            "pre_payment_credit_notes_amount": 0,
            "post_payment_credit_notes_amount": 0,
            "lines": {
                "object": "list",
                "data": [
                    {
                        "id": line,
                        "object": "line_item",
                        "amount": amount,
                        "quantity": 1,
                        "currency": "usd",
                        "description": "Pro plan (1 seat)",
                    }
                ],
                "has_more": False,
                "url": f"/v1/invoices/{invoice}/lines",
            },
            "created": now - 86400 * 30,
            "livemode": False,
            "metadata": {},
        }
    return customers, subscriptions, invoices


def create_app(
    *,
    api_key: str | None = "sk_test_fake",
    rate_limit_first: int = 0,
    fail_first: int = 0,
    delay_s: float = 0.0,
    retry_after_s: float = 1.0,
) -> FastAPI:
    """The fake server. ``api_key=None`` accepts any caller."""
    app = FastAPI(title="Fake Stripe API", docs_url=None, redoc_url=None, openapi_url=None)
    state = app.state
    state.customers, state.subscriptions, state.invoices = _seed(int(time.time()))
    state.credit_notes = {}
    state.requests = []
    state.idempotency = {}
    state.replays = 0
    counters = {"calls": 0, "requests": 0, "objects": 0}

    def request_id() -> str:
        counters["requests"] += 1
        return f"req_fake{counters['requests']:010d}"

    def new_id(prefix: str) -> str:
        counters["objects"] += 1
        return f"{prefix}_fake{counters['objects']:020d}"

    def reply(status: int, body: dict[str, Any], rid: str, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse(body, status_code=status, headers={"Request-Id": rid, **(headers or {})})

    def authorised(request: Request) -> StripeError | None:
        if api_key is None:
            return None
        header = request.headers.get("authorization", "")
        scheme, _, credential = header.partition(" ")
        if scheme.lower() == "basic":
            try:
                credential = base64.b64decode(credential).decode("utf-8").partition(":")[0]
            except ValueError:
                credential = ""
        elif scheme.lower() != "bearer":
            return StripeError(
                401,
                "You did not provide an API key. You need to provide your API key in the Authorization header, "
                "using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api"
                "#authentication for details, or we can help at https://support.stripe.com/.",
            )
        if credential.strip() != api_key:
            # Stripe echoes the key masked; the fake echoes none, so a test log never holds one.
            return StripeError(401, "Invalid API Key provided.")
        return None

    def fault(rid: str) -> Response | None:
        """The scripted 429s and 500s, counted over authenticated calls."""
        counters["calls"] += 1
        number = counters["calls"]
        if number <= rate_limit_first:
            error = StripeError(
                429,
                "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits.",
                code="rate_limit",
            )
            headers = {"Retry-After": f"{retry_after_s:g}", "Stripe-Should-Retry": "true"}
            return reply(429, error.body, rid, headers)
        if number <= rate_limit_first + fail_first:
            error = StripeError(500, "An unknown error occurred.", type_="api_error")
            return reply(500, error.body, rid, {"Stripe-Should-Retry": "true"})
        return None

    async def run_get(request: Request, execute: Callable[[dict[str, Any]], dict[str, Any]]) -> Response:
        rid = request_id()
        denied = authorised(request)
        if denied is not None:
            return reply(denied.status, denied.body, rid)
        params = dict(request.query_params)
        state.requests.append({"method": "GET", "path": request.url.path, "params": params, "idempotency_key": None})
        failed = fault(rid)
        if failed is not None:
            return failed
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        try:
            return reply(200, execute(params), rid)
        except StripeError as exc:
            return reply(exc.status, exc.body, rid)

    async def run_post(request: Request, execute: Callable[[dict[str, Any]], dict[str, Any]]) -> Response:
        rid = request_id()
        denied = authorised(request)
        if denied is not None:
            return reply(denied.status, denied.body, rid)
        key = request.headers.get("idempotency-key")
        method, path = request.method, request.url.path
        try:
            params = parse_form((await request.body()).decode("utf-8"))
        except UnicodeDecodeError:
            params = {}
            failure: StripeError | None = _invalid("The request body is not valid UTF-8.")
        except StripeError as exc:
            params, failure = {}, exc
        else:
            failure = None
        state.requests.append({"method": method, "path": path, "params": params, "idempotency_key": key})
        failed = fault(rid)
        if failed is not None:
            return failed
        if failure is not None:
            return reply(failure.status, failure.body, rid)
        saved: _Saved | None = None
        if key is not None:
            if len(key) > 255:
                error = _invalid("Idempotency-Key must be at most 255 characters long.")
                return reply(error.status, error.body, rid)
            earlier = state.idempotency.get(key)
            if earlier is not None:
                return replay(earlier, key, method, path, params, rid)
            saved = state.idempotency[key] = _Saved(method, path, params, rid)
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        try:
            status, body = 200, execute(params)
        except StripeError as exc:
            if saved is not None and key is not None and not exc.saved:
                del state.idempotency[key]
                saved = None
            status, body = exc.status, exc.body
        except Exception:
            if key is not None:  # a bug in the fake must not leave the key "in progress" for ever
                state.idempotency.pop(key, None)
            raise
        headers = {}
        if saved is not None and key is not None:
            saved.status, saved.body = status, body
            headers = {"Idempotency-Key": key, "Original-Request": rid}
        return reply(status, body, rid, headers)

    def replay(earlier: _Saved, key: str, method: str, path: str, params: dict[str, Any], rid: str) -> Response:
        if earlier.status is None:
            error = StripeError(
                409,
                "There is currently another in-progress request using this Idempotent Key (that probably means you "
                "submitted twice, and the other request is still going through): "
                f"{earlier.request_id}. Please try again later.",
                type_="idempotency_error",
            )
            return reply(409, error.body, rid)
        if (earlier.method, earlier.path) != (method, path):
            error = StripeError(
                400,
                "Keys for idempotent requests can only be used for the same endpoint they were first used for "
                f"('{earlier.method} {earlier.path}' vs '{method} {path}'). Try using a key other than '{key}' if "
                "you meant to execute a different request.",
                type_="idempotency_error",
            )
            return reply(400, error.body, rid)
        if earlier.params != params:
            error = StripeError(
                400,
                "Keys for idempotent requests can only be used with the same parameters they were first used with. "
                f"Try using a key other than '{key}' if you meant to execute a different request.",
                type_="idempotency_error",
            )
            return reply(400, error.body, rid)
        state.replays += 1
        headers = {"Idempotency-Key": key, "Original-Request": earlier.request_id, "Idempotent-Replayed": "true"}
        return reply(earlier.status, earlier.body, rid, headers)

    def found(kind: str, collection: dict[str, Any], identifier: str, param: str = "id") -> dict[str, Any]:
        item: dict[str, Any] | None = collection.get(identifier)
        if item is None:
            raise StripeError(404, f"No such {kind}: '{identifier}'", code="resource_missing", param=param)
        return item

    # -- subscriptions ---------------------------------------------------------------------------------------

    def update_subscription(identifier: str, params: dict[str, Any]) -> dict[str, Any]:
        _unknown(params, {"pause_collection", "metadata"})
        pause: dict[str, Any] | None = None
        if "pause_collection" in params:
            value = params["pause_collection"]
            if isinstance(value, dict):
                _unknown(value, {"behavior", "resumes_at"}, "pause_collection")
                behavior = value.get("behavior")
                if behavior is None:
                    raise _invalid(
                        "Missing required param: pause_collection[behavior].",
                        param="pause_collection[behavior]",
                        code="parameter_missing",
                    )
                if behavior not in BEHAVIORS:
                    raise _invalid(
                        "Invalid pause_collection[behavior]: must be one of keep_as_draft, mark_uncollectible, or void",
                        param="pause_collection[behavior]",
                    )
                resumes_at = None if value.get("resumes_at") in (None, "") else value["resumes_at"]
                if resumes_at is not None:
                    resumes_at = _integer(value, "resumes_at", "pause_collection[resumes_at]")
                pause = {"behavior": behavior, "resumes_at": resumes_at}
            elif value != "":
                raise _invalid("Invalid object", param="pause_collection")
        metadata = params.get("metadata")
        if metadata is not None and not isinstance(metadata, dict) and metadata != "":
            raise _invalid("Invalid object", param="metadata")
        subscription = found("subscription", state.subscriptions, identifier)
        if subscription["status"] in ("canceled", "incomplete_expired"):
            raise StripeError(400, "A canceled subscription can only update its cancellation_details and metadata.")
        if "pause_collection" in params:
            subscription["pause_collection"] = pause
        if metadata == "":
            subscription["metadata"] = {}
        elif isinstance(metadata, dict):
            subscription["metadata"].update(metadata)
            subscription["metadata"] = {k: v for k, v in subscription["metadata"].items() if v != ""}
        return copy.deepcopy(subscription)

    @app.post("/v1/subscriptions/{identifier}")
    async def post_subscription(identifier: str, request: Request) -> Response:
        return await run_post(request, lambda params: update_subscription(identifier, params))

    @app.get("/v1/subscriptions/{identifier}")
    async def get_subscription(identifier: str, request: Request) -> Response:
        return await run_get(request, lambda _: copy.deepcopy(found("subscription", state.subscriptions, identifier)))

    @app.get("/v1/invoices/{identifier}")
    async def get_invoice(identifier: str, request: Request) -> Response:
        return await run_get(request, lambda _: copy.deepcopy(found("invoice", state.invoices, identifier)))

    # -- credit notes ----------------------------------------------------------------------------------------

    def credit_lines(invoice: dict[str, Any], lines: Any) -> tuple[int, list[dict[str, Any]]]:
        if not isinstance(lines, list) or not lines:
            raise _invalid("Invalid array", param="lines")
        total, made = 0, []
        invoice_lines = {line["id"]: line for line in invoice["lines"]["data"]}
        for index, line in enumerate(lines):
            prefix = f"lines[{index}]"
            if not isinstance(line, dict):
                raise _invalid("Invalid object", param=prefix)
            _unknown(line, LINE_PARAMS, prefix)
            kind = line.get("type")
            if kind is None:
                raise _invalid(
                    f"Missing required param: {prefix}[type].", param=f"{prefix}[type]", code="parameter_missing"
                )
            quantity = _integer(line, "quantity", f"{prefix}[quantity]")
            if kind == "invoice_line_item":
                reference = line.get("invoice_line_item")
                if not reference:
                    raise _invalid(
                        f"Missing required param: {prefix}[invoice_line_item].",
                        param=f"{prefix}[invoice_line_item]",
                        code="parameter_missing",
                    )
                credited = invoice_lines.get(reference)
                if credited is None:
                    raise StripeError(
                        400,
                        f"No such invoice line item '{reference}' on invoice {invoice['id']}",
                        param=f"{prefix}[invoice_line_item]",
                    )
                amount = _integer(line, "amount", f"{prefix}[amount]")
                if amount is None:
                    if quantity is None:
                        raise _invalid(
                            f"You must pass one of {prefix}[amount] or {prefix}[quantity].", param=f"{prefix}[amount]"
                        )
                    amount = credited["amount"] // max(1, credited["quantity"]) * quantity
                unit_amount, description = None, credited["description"]
            elif kind == "custom_line_item":
                unit_amount = _integer(line, "unit_amount", f"{prefix}[unit_amount]")
                if unit_amount is None:
                    raise _invalid(
                        f"Missing required param: {prefix}[unit_amount].",
                        param=f"{prefix}[unit_amount]",
                        code="parameter_missing",
                    )
                quantity = quantity or 1
                amount, reference, description = unit_amount * quantity, None, line.get("description")
            else:
                raise _invalid(
                    f"Invalid {prefix}[type]: must be one of invoice_line_item or custom_line_item",
                    param=f"{prefix}[type]",
                )
            if amount <= 0:
                raise _invalid("This value must be greater than 0.", param=f"{prefix}[amount]")
            total += amount
            made.append(
                {
                    "id": new_id("cnli"),
                    "object": "credit_note_line_item",
                    "type": kind,
                    "amount": amount,
                    "quantity": quantity,
                    "unit_amount": unit_amount,
                    "invoice_line_item": reference,
                    "description": description,
                    "discount_amount": 0,
                    "discount_amounts": [],
                    "tax_rates": [],
                    "livemode": False,
                }
            )
        return total, made

    def create_credit_note(params: dict[str, Any]) -> dict[str, Any]:
        _unknown(params, CREDIT_NOTE_PARAMS)
        identifier = params.get("invoice")
        if not identifier:
            raise _invalid("Missing required param: invoice.", param="invoice", code="parameter_missing")
        amount = _integer(params, "amount")
        outside = {name: _integer(params, name) or 0 for name in ("credit_amount", "refund_amount")}
        outside["out_of_band_amount"] = _integer(params, "out_of_band_amount") or 0
        reason = params.get("reason") or None
        if reason is not None and reason not in REASONS:
            raise _invalid(
                "Invalid reason: must be one of duplicate, fraudulent, order_change, or product_unsatisfactory",
                param="reason",
            )
        if amount is None and "lines" not in params:
            raise _invalid("You must pass one of amount, lines, or shipping_cost.", param="amount")
        if amount is not None and "lines" in params:
            raise _invalid("You may only specify one of these parameters: amount, lines.", param="amount")
        if amount is not None and amount <= 0:
            raise _invalid("This value must be greater than 0.", param="amount")
        invoice = found("invoice", state.invoices, str(identifier), param="invoice")
        if invoice["status"] not in ("open", "paid"):
            raise StripeError(
                400,
                f"Credit notes can only be issued on finalized invoices; invoice {invoice['id']} is "
                f"{invoice['status']}.",
                param="invoice",
            )
        lines: list[dict[str, Any]] = []
        param = "amount"
        if amount is None:
            amount, lines = credit_lines(invoice, params["lines"])
            param = "lines"
        credited = sum(note["amount"] for note in state.credit_notes.values() if note["invoice"] == invoice["id"])
        creditable = invoice["total"] - credited
        if amount > creditable:
            raise StripeError(
                400,
                f"The credit note total ({amount}) exceeds the amount that can still be credited on invoice "
                f"{invoice['id']} ({creditable}).",
                param=param,
            )
        pre_payment = min(amount, invoice["amount_remaining"])
        post_payment = amount - pre_payment
        if sum(outside.values()) != post_payment:
            raise StripeError(
                400,
                f"The sum of credit_amount, refund_amount and out_of_band_amount ({sum(outside.values())}) must "
                f"equal the part of the credit note above the invoice's amount_remaining ({post_payment}).",
                param=param,
            )
        invoice["amount_remaining"] -= pre_payment
        invoice["amount_due"] -= pre_payment
        invoice["pre_payment_credit_notes_amount"] += pre_payment
        invoice["post_payment_credit_notes_amount"] += post_payment
        number = 1 + sum(1 for note in state.credit_notes.values() if note["invoice"] == invoice["id"])
        note_id = new_id("cn")
        note = {
            "id": note_id,
            "object": "credit_note",
            "number": f"{invoice['number']}-CN-{number:02d}",
            "invoice": invoice["id"],
            "customer": invoice["customer"],
            "currency": invoice["currency"],
            "amount": amount,
            "amount_shipping": 0,
            "subtotal": amount,
            "total": amount,
            "discount_amount": 0,
            "pre_payment_amount": pre_payment,
            "post_payment_amount": post_payment,
            "out_of_band_amount": outside["out_of_band_amount"] or None,
            "type": "pre_payment" if post_payment == 0 else "post_payment" if pre_payment == 0 else "mixed",
            "reason": reason,
            "memo": params.get("memo") or None,
            "metadata": params.get("metadata") if isinstance(params.get("metadata"), dict) else {},
            "lines": {"object": "list", "data": lines, "has_more": False, "url": f"/v1/credit_notes/{note_id}/lines"},
            "status": "issued",
            "created": int(time.time()),
            "effective_at": int(time.time()),
            "voided_at": None,
            "livemode": False,
        }
        if outside["credit_amount"]:
            customer = state.customers[invoice["customer"]]
            customer["balance"] -= outside["credit_amount"]
        state.credit_notes[note_id] = note
        return copy.deepcopy(note)

    def list_credit_notes(params: dict[str, Any]) -> dict[str, Any]:
        _unknown(params, {"invoice", "customer", "limit", "starting_after"})
        limit = _integer(params, "limit") or 10
        if not 1 <= limit <= 100:
            raise _invalid("This value must be between 1 and 100.", param="limit")
        notes = [
            note
            for note in sorted(state.credit_notes.values(), key=lambda n: n["id"], reverse=True)
            if all(note[name] == params[name] for name in ("invoice", "customer") if name in params)
        ]
        after = params.get("starting_after")
        if after:
            ids = [note["id"] for note in notes]
            if after not in ids:
                raise StripeError(
                    404, f"No such credit note: '{after}'", code="resource_missing", param="starting_after"
                )
            notes = notes[ids.index(after) + 1 :]
        return {
            "object": "list",
            "data": copy.deepcopy(notes[:limit]),
            "has_more": len(notes) > limit,
            "url": "/v1/credit_notes",
        }

    @app.post("/v1/credit_notes")
    async def post_credit_note(request: Request) -> Response:
        return await run_post(request, create_credit_note)

    @app.get("/v1/credit_notes")
    async def get_credit_notes(request: Request) -> Response:
        return await run_get(request, list_credit_notes)

    @app.get("/v1/credit_notes/{identifier}")
    async def get_credit_note(identifier: str, request: Request) -> Response:
        return await run_get(request, lambda _: copy.deepcopy(found("credit_note", state.credit_notes, identifier)))

    @app.get("/v1/balance")
    async def get_balance(request: Request) -> Response:
        def balance(_: dict[str, Any]) -> dict[str, Any]:
            zero = [{"amount": 0, "currency": "usd", "source_types": {"card": 0}}]
            return {"object": "balance", "available": zero, "pending": copy.deepcopy(zero), "livemode": False}

        return await run_get(request, balance)

    @app.api_route("/{path:path}", methods=["GET", "POST", "DELETE", "PUT", "PATCH"])
    async def unknown(path: str, request: Request) -> Response:
        error = StripeError(
            404,
            f"Unrecognized request URL ({request.method}: /{path}). Please see https://stripe.com/docs or we can "
            "help at https://support.stripe.com/.",
        )
        return reply(404, error.body, request_id())

    return app
