"""The Stripe connector: pause and resume payment collection on a subscription, and issue credit notes.

Stripe's API v1 authenticates with the secret key as a Bearer token, takes form-encoded bodies whose nested values
are spelled with brackets (``pause_collection[behavior]=void``, ``lines[0][amount]=500``) and answers errors as
``{"error": {"type", "code", "message", "param"}}``; :func:`stripe_error_message` turns that body into the error's
message. 400, 402 and 404 are permanent; 429 and 5xx are retried (honouring ``Retry-After``) by the shared
:class:`~opsrail.connectors.HttpTransport`.

Every POST carries the engine's idempotency key (``CallContext.idempotency_key``, stable across a step's attempts)
as ``Idempotency-Key``. Stripe saves the first answer given for a key and replays it to a retry with the same
parameters, so a step retried after a lost answer does not pause twice or issue a second credit note. Reusing a key
with different parameters is refused with ``idempotency_error`` (400, permanent: the playbook changed under a
running step). A 409 means another request with the same key is still running: it is made retryable, and a later
attempt gets the saved answer. Keys longer than Stripe's 255 characters are replaced by their SHA-256.

Settings: ``base_url`` (default ``https://api.stripe.com``), ``api_key`` or ``api_key_file`` (the first line of the
file), and optionally ``api_version`` (sent as ``Stripe-Version``; without it the account's default version applies).
A missing or unreadable key does not stop the connector from being built: :meth:`StripeConnector.check` reports it
and every operation fails permanently with the reason.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal, Self

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
)
from opsrail.engine import CallContext, OperationFailed

DEFAULT_BASE_URL = "https://api.stripe.com"
MAX_IDEMPOTENCY_KEY = 255  # Stripe's limit on the length of an Idempotency-Key
USER_AGENT = "opsrail-connector-stripe/0.1"

_SUBSCRIPTION_ID = r"^sub_[A-Za-z0-9_]+$"
_INVOICE_ID = r"^in_[A-Za-z0-9_]+$"
_OBJECT_ID = r"^[A-Za-z0-9_]+$"

Behavior = Literal["keep_as_draft", "mark_uncollectible", "void"]
Reason = Literal["duplicate", "fraudulent", "order_change", "product_unsatisfactory"]


# -- operation inputs and outputs --------------------------------------------------------------------------------


class PauseCollection(Model):
    """Stop collecting payment on a subscription; invoices are still made and handled as ``behavior`` says."""

    subscription: str = Field(pattern=_SUBSCRIPTION_ID, description="the subscription id, sub_...")
    behavior: Behavior = Field(
        default="keep_as_draft",
        description="what happens to invoices made while paused: keep_as_draft (collect later), "
        "mark_uncollectible (service for free) or void (no service)",
    )
    resumes_at: datetime | None = Field(
        default=None, description="when collection resumes by itself; a time without an offset is UTC"
    )


class ResumeCollection(Model):
    """Resume collecting payment: unsets the subscription's ``pause_collection``."""

    subscription: str = Field(pattern=_SUBSCRIPTION_ID, description="the subscription id, sub_...")


class CollectionState(Model):
    subscription: str
    paused: bool
    behavior: str | None = None
    resumes_at: datetime | None = None


class CreditNoteLine(Model):
    """One line of a credit note: part of an invoice line, or a custom line."""

    type: Literal["invoice_line_item", "custom_line_item"]
    invoice_line_item: str | None = Field(
        default=None, pattern=_OBJECT_ID, description="the invoice line credited (invoice_line_item lines)"
    )
    amount: int | None = Field(default=None, gt=0, description="minor units to credit (invoice_line_item lines)")
    quantity: int | None = Field(default=None, gt=0)
    unit_amount: int | None = Field(default=None, ge=0, description="minor units per unit (custom_line_item lines)")
    description: str | None = Field(default=None, max_length=5000, description="(custom_line_item lines)")

    @model_validator(mode="after")
    def _fits_its_type(self) -> Self:
        if self.type == "invoice_line_item":
            if self.invoice_line_item is None:
                raise ValueError("an invoice_line_item line names the invoice_line_item it credits")
            if self.amount is None and self.quantity is None:
                raise ValueError("an invoice_line_item line needs amount or quantity")
            if self.unit_amount is not None or self.description is not None:
                raise ValueError("unit_amount and description are for custom_line_item lines")
        else:
            if self.invoice_line_item is not None or self.amount is not None:
                raise ValueError("invoice_line_item and amount are for invoice_line_item lines")
            if self.unit_amount is None or not self.description:
                raise ValueError("a custom_line_item line needs unit_amount and description")
        return self


class CreateCreditNote(Model):
    """Issue a credit note on a finalized invoice, for ``amount`` or for ``lines`` (exactly one of the two).

    On an open invoice the credit first lowers what is still due. Any part above the invoice's remaining amount
    must be settled by ``credit_amount`` (customer balance), ``refund_amount`` or ``out_of_band_amount``, which
    together must equal that part; Stripe refuses the credit note otherwise.
    """

    invoice: str = Field(pattern=_INVOICE_ID, description="the invoice id, in_...")
    amount: int | None = Field(default=None, gt=0, description="the total to credit, in minor units (cents)")
    lines: list[CreditNoteLine] | None = Field(default=None, min_length=1, max_length=100)
    reason: Reason | None = None
    memo: str | None = Field(default=None, max_length=5000, description="printed on the credit note")
    credit_amount: int | None = Field(default=None, ge=0, description="minor units credited to the customer balance")
    refund_amount: int | None = Field(default=None, ge=0, description="minor units refunded")
    out_of_band_amount: int | None = Field(default=None, ge=0, description="minor units credited outside Stripe")

    @model_validator(mode="after")
    def _amount_or_lines(self) -> Self:
        if (self.amount is None) == (self.lines is None):
            raise ValueError("give exactly one of amount and lines")
        return self


class CreditNoteIssued(Model):
    id: str
    status: str
    amount: int


# -- wire format -------------------------------------------------------------------------------------------------


def form_encode(params: Mapping[str, Any]) -> dict[str, str]:
    """Stripe's form encoding: mappings nest as ``key[sub]``, sequences as ``key[0]``, booleans are ``true`` and
    ``false``, datetimes Unix seconds (naive ones taken as UTC). ``None`` is left out; ``""`` (and an empty
    sequence) is sent as ``key=``, which Stripe reads as "unset this field"."""
    fields: dict[str, str] = {}

    def add(key: str, value: Any) -> None:
        if value is None:
            return
        if isinstance(value, Mapping):
            for name, item in value.items():
                add(f"{key}[{name}]" if key else str(name), item)
        elif isinstance(value, list | tuple):
            if not value:
                fields[key] = ""
            for index, item in enumerate(value):
                add(f"{key}[{index}]", item)
        elif isinstance(value, bool):
            fields[key] = "true" if value else "false"
        elif isinstance(value, datetime):
            fields[key] = str(unix_seconds(value))
        else:
            fields[key] = str(value)

    add("", params)
    return fields


def unix_seconds(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def stripe_idempotency_key(key: str) -> str:
    """The engine's key as Stripe takes it: unchanged up to 255 characters, else a digest of it."""
    if len(key) <= MAX_IDEMPOTENCY_KEY:
        return key
    return "opsrail-" + hashlib.sha256(key.encode("utf-8")).hexdigest()


def stripe_error_message(response: httpx.Response) -> str:
    """``invalid_request_error/resource_missing: No such invoice: 'in_9' (param invoice) [request req_1]``."""
    try:
        body = response.json()
    except ValueError:
        return default_error(response)
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return default_error(response)
    kind = error.get("type") or "error"
    code = error.get("code") or error.get("decline_code")
    text = f"{kind}/{code}" if code else str(kind)
    text += f": {error.get('message') or response.reason_phrase}"
    if error.get("param"):
        text += f" (param {error['param']})"
    request_id = response.headers.get("request-id")
    if request_id:
        text += f" [request {request_id}]"
    return text[:500]


# -- the connector -----------------------------------------------------------------------------------------------


class StripeConnector(Connector):
    """Stripe Billing through API v1 (see the module's description for settings and guarantees)."""

    name = "stripe"
    summary = "Stripe Billing: pause and resume payment collection on subscriptions, issue credit notes"

    def __init__(
        self,
        config: Mapping[str, Any],
        client: httpx.AsyncClient,
        *,
        policy: HttpPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.problem: str | None = None
        try:
            api_key = secret(config, "api_key", self.name)
        except OperationFailed as exc:
            api_key, self.problem = None, str(exc)
        if api_key is None and self.problem is None:
            self.problem = "stripe: no API key; set api_key or api_key_file"
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        if config.get("api_version"):
            headers["Stripe-Version"] = str(config["api_version"])
        self.http = HttpTransport(
            self.name,
            client,
            str(config.get("base_url") or DEFAULT_BASE_URL),
            headers=headers,
            policy=policy or HttpPolicy(),
            idempotency_header="Idempotency-Key",
            error_message=stripe_error_message,
            sleep=sleep,
        )

    def operations(self) -> list[OperationSpec]:
        return [
            OperationSpec(
                "pause_collection",
                "pause payment collection on a subscription (invoices kept as drafts, uncollectible or void)",
                PauseCollection,
                CollectionState,
                self.pause_collection,
            ),
            OperationSpec(
                "resume_collection",
                "resume payment collection on a subscription",
                ResumeCollection,
                CollectionState,
                self.resume_collection,
            ),
            OperationSpec(
                "create_credit_note",
                "issue a credit note on a finalized invoice, for an amount or for lines",
                CreateCreditNote,
                CreditNoteIssued,
                self.create_credit_note,
            ),
        ]

    async def pause_collection(self, arguments: PauseCollection, call: CallContext) -> CollectionState:
        form = form_encode(
            {"pause_collection": {"behavior": arguments.behavior, "resumes_at": arguments.resumes_at}},
        )
        body = await self._post(f"/v1/subscriptions/{arguments.subscription}", form, call)
        return _collection_state(body, arguments.subscription)

    async def resume_collection(self, arguments: ResumeCollection, call: CallContext) -> CollectionState:
        # Stripe unsets a field sent empty: ``pause_collection=`` resumes collection.
        body = await self._post(f"/v1/subscriptions/{arguments.subscription}", {"pause_collection": ""}, call)
        return _collection_state(body, arguments.subscription)

    async def create_credit_note(self, arguments: CreateCreditNote, call: CallContext) -> CreditNoteIssued:
        form = form_encode(
            {
                "invoice": arguments.invoice,
                "amount": arguments.amount,
                "lines": [line.model_dump(exclude_none=True) for line in arguments.lines] if arguments.lines else None,
                "reason": arguments.reason,
                "memo": arguments.memo,
                "credit_amount": arguments.credit_amount,
                "refund_amount": arguments.refund_amount,
                "out_of_band_amount": arguments.out_of_band_amount,
            }
        )
        body = await self._post("/v1/credit_notes", form, call)
        identifier, status, amount = body.get("id"), body.get("status"), body.get("amount")
        if not isinstance(identifier, str) or not isinstance(status, str) or not isinstance(amount, int):
            raise ConnectorError(
                "stripe: POST /v1/credit_notes answered without id, status and amount", retryable=False
            )
        return CreditNoteIssued(id=identifier, status=status, amount=amount)

    async def check(self) -> dict[str, Any]:
        if self.problem is not None:
            return {"ok": False, "detail": self.problem}
        try:
            body = (await self.http.request("GET", "/v1/balance")).json()
        except OperationFailed as exc:
            return {"ok": False, "detail": str(exc)}
        except Exception as exc:  # a check reports, it never raises
            return {"ok": False, "detail": f"stripe: GET /v1/balance failed: {type(exc).__name__}: {exc}"}
        mode = "live" if isinstance(body, dict) and body.get("livemode") else "test"
        return {"ok": True, "detail": f"stripe: authenticated ({mode} mode)"}

    async def _post(self, path: str, form: Mapping[str, str], call: CallContext) -> dict[str, Any]:
        if self.problem is not None:
            raise ConnectorError(self.problem, retryable=False, code="config")
        key = stripe_idempotency_key(call.idempotency_key)
        try:
            response = await self.http.request("POST", path, data=dict(form), idempotency_key=key)
        except ConnectorError as exc:
            if exc.status == 409:
                # Another request with this key is still running; once it ends, a retry gets its saved answer.
                raise ConnectorError(
                    f"{exc} (another request with the same idempotency key is in progress)",
                    retryable=True,
                    status=409,
                    code=exc.code,
                ) from exc
            raise
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise ConnectorError(f"stripe: POST {path} answered something other than a JSON object", retryable=False)
        return body


def _collection_state(body: Mapping[str, Any], subscription: str) -> CollectionState:
    pause = body.get("pause_collection")
    if not isinstance(pause, Mapping):
        return CollectionState(subscription=str(body.get("id") or subscription), paused=False)
    resumes_at = pause.get("resumes_at")
    return CollectionState(
        subscription=str(body.get("id") or subscription),
        paused=True,
        behavior=pause.get("behavior"),
        resumes_at=datetime.fromtimestamp(resumes_at, UTC) if isinstance(resumes_at, int) else None,
    )
