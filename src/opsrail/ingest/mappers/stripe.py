"""The Stripe source mapper: Stripe events about invoices and subscriptions become canonical events.

* ``invoice.payment_failed`` -> ``com.opsrail.invoice.payment_failed``; ``invoice.paid`` and
  ``invoice.payment_succeeded`` -> ``com.opsrail.invoice.paid``; ``invoice.created``, ``.finalized``,
  ``.updated``, ``.voided``, ``.marked_uncollectible`` and ``.payment_action_required`` keep their
  verb. The data is an Invoice.
* ``customer.subscription.created``/``updated``/``deleted``/``paused``/``resumed`` ->
  ``com.opsrail.subscription.<verb>`` with a Subscription.
* every other well-formed event (``charge.succeeded``, ``invoice.upcoming``, ...) passes through as
  ``com.stripe.<type>`` with the Stripe event as data.

The event source is ``stripe`` (not ``https://api.stripe.com``): Stripe object ids are unique across
accounts and modes, so the source needs no account or host to keep (source, id) unique, and a fixed
name keeps events from test and live webhooks comparable. The event id is Stripe's ``evt_...`` id,
which Stripe repeats when it retries a delivery.

Amounts arrive in the currency's minor unit and are converted to major units with the exponent
Stripe uses: 0 for its zero-decimal currencies (JPY, KRW, ...), 3 for BHD, JOD, KWD, OMR and TND, 2
for everything else, including ISK, HUF and TWD, which Stripe keeps two-decimal in its API. Objects
are read in the shapes of both older API versions and 2025-03-31 and later (where an invoice's
subscription moved to ``parent.subscription_details``). Ids: ``stripe:<object id>`` with the native
id in ``external_ids.billing_id``; customers become ``account_id`` ``stripe-customer:<cus_...>``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from opsrail.ingest.mappers._base import cloudevent
from opsrail.ingest.mappers._fields import TITLE_LIMIT, Reader, child, clip, drop_none, iso, iso_date
from opsrail.model import event_type

SOURCE = "stripe"
_FOREIGN_PREFIX = "com.stripe."
_EVENT_NAME = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)+$")
_CURRENCY = re.compile(r"^[A-Za-z]{3}$")

_ZERO_DECIMAL = frozenset(
    {"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF"}
)
_THREE_DECIMAL = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})
# The canonical Amount holds four decimal places; a yearly price divided by twelve needs rounding.
_AMOUNT_QUANTUM = Decimal("0.0001")
# ... and 18 digits in all, so 14 before the point. Stripe's own limit is eight digits of minor units;
# a larger amount is not a Stripe amount.
_MAX_MAJOR = Decimal(10) ** 14
_MAX_MINOR = 10**14 - 1
_MAX_QUANTITY = 10**9

_INVOICE_VERBS = {
    "invoice.payment_failed": "payment_failed",
    "invoice.paid": "paid",
    "invoice.payment_succeeded": "paid",
    "invoice.created": "created",
    "invoice.finalized": "finalized",
    "invoice.updated": "updated",
    "invoice.voided": "voided",
    "invoice.marked_uncollectible": "marked_uncollectible",
    "invoice.payment_action_required": "payment_action_required",
}
_SUBSCRIPTION_VERBS = {
    "customer.subscription.created": "created",
    "customer.subscription.updated": "updated",
    "customer.subscription.deleted": "deleted",
    "customer.subscription.paused": "paused",
    "customer.subscription.resumed": "resumed",
}
_INVOICE_STATUSES = frozenset({"draft", "open", "paid", "void", "uncollectible"})
# What an invoice's status must be after an event, for objects that arrive without one.
_INVOICE_STATUS_BY_VERB = {
    "paid": "paid",
    "payment_failed": "open",
    "payment_action_required": "open",
    "finalized": "open",
    "voided": "void",
    "marked_uncollectible": "uncollectible",
}
_SUBSCRIPTION_STATUSES = frozenset({"trialing", "active", "past_due", "paused", "canceled", "incomplete", "unpaid"})
# incomplete_expired: the first payment never succeeded and Stripe gave up; the subscription is over.
_SUBSCRIPTION_STATUS_ALIASES = {"incomplete_expired": "canceled"}
_MONTHS_PER_INTERVAL = {"month": 1, "year": 12}


class StripeMapper:
    name = "stripe"
    description = (
        "Stripe events: invoice.* payment events become invoice events, customer.subscription.* become "
        "subscription events; other Stripe events pass through as com.stripe.*"
    )

    def map(self, payload: Any, headers: Mapping[str, str]) -> list[dict[str, Any]]:
        reader = Reader(
            "the Stripe event could not be mapped",
            hint="send the Stripe event object exactly as Stripe posts it to a webhook endpoint "
            '({"id": "evt_...", "object": "event", "type": ..., "data": {"object": ...}})',
        )
        body = reader.obj(payload, "$")
        event_id = reader.req_key(body, "id", "$")
        kind = reader.text(body, "object", "$")
        if kind is not None and kind != "event":
            reader.fail("$.object", f"expected a Stripe event (object 'event'), got {kind!r}")
        stripe_type = reader.req_text(body, "type", "$")
        if not _EVENT_NAME.match(stripe_type):
            reader.fail("$.type", f"not a Stripe event type: {stripe_type!r}")
        created = reader.epoch(body, "created", "$")
        data = reader.req_obj(body, "data", "$")
        obj = reader.req_obj(data, "object", "$.data")
        context = drop_none(
            {
                "stripe_event_type": stripe_type,
                "livemode": body.get("livemode") if isinstance(body.get("livemode"), bool) else None,
                "api_version": reader.text(body, "api_version", "$"),
                "stripe_account": reader.text(body, "account", "$"),
            }
        )
        changed = sorted(key for key in (reader.opt_obj(data, "previous_attributes", "$.data") or {}))

        if stripe_type in _INVOICE_VERBS:
            verb = _INVOICE_VERBS[stripe_type]
            canonical = _invoice(reader, obj, "$.data.object", verb, context)
            kind_name = "invoice"
        elif stripe_type in _SUBSCRIPTION_VERBS:
            verb = _SUBSCRIPTION_VERBS[stripe_type]
            canonical = _subscription(reader, obj, "$.data.object", context, changed)
            kind_name = "subscription"
        else:
            return [cloudevent(id=event_id, source=SOURCE, type=_FOREIGN_PREFIX + stripe_type, time=created, data=body)]

        return [
            cloudevent(
                id=event_id,
                source=SOURCE,
                type=event_type(kind_name, verb),
                subject=canonical["id"],
                time=created,
                data=canonical,
            )
        ]


def _invoice(reader: Reader, obj: dict[str, Any], path: str, verb: str, context: dict[str, Any]) -> dict[str, Any]:
    invoice_id = reader.req_key(obj, "id", path)
    currency = _currency(reader, obj, path)
    amount_due = reader.count(obj, "amount_due", path, _MAX_MINOR)
    if amount_due is None:
        reader.missing(child(path, "amount_due"), "'amount_due'")
    amount_paid = reader.count(obj, "amount_paid", path, _MAX_MINOR) or 0
    stripe_status = reader.text(obj, "status", path)
    status = stripe_status if stripe_status in _INVOICE_STATUSES else _INVOICE_STATUS_BY_VERB.get(verb, "draft")
    transitions = reader.opt_obj(obj, "status_transitions", path) or {}
    issued_at = reader.epoch(transitions, "finalized_at", child(path, "status_transitions")) or reader.epoch(
        obj, "created", path
    )
    customer = _ref(reader, obj, "customer", path)
    subscription = _ref(reader, obj, "subscription", path) or _parent_subscription(reader, obj, path)

    attributes = drop_none(
        {
            **context,
            "stripe_status": stripe_status,
            "billing_reason": reader.text(obj, "billing_reason", path),
            "collection_method": reader.text(obj, "collection_method", path),
            "hosted_invoice_url": reader.text(obj, "hosted_invoice_url", path),
            "customer_email": reader.text(obj, "customer_email", path),
            "charge": _ref(reader, obj, "charge", path),
            "payment_intent": _ref(reader, obj, "payment_intent", path),
            "next_payment_attempt": iso(reader.epoch(obj, "next_payment_attempt", path)),
            "amount_remaining": _major(reader.integer(obj, "amount_remaining", path), currency),
            "total": _major(reader.integer(obj, "total", path), currency),
        }
    )
    return drop_none(
        {
            "id": f"stripe:{invoice_id}",
            "external_ids": {"billing_id": invoice_id},
            "account_id": f"stripe-customer:{customer}" if customer else None,
            "subscription_id": f"stripe:{subscription}" if subscription else None,
            "number": reader.text(obj, "number", path),
            "status": status,
            "amount_due": _major(amount_due, currency),
            "amount_paid": _major(amount_paid, currency),
            "currency": currency,
            "due_date": iso_date(reader.epoch(obj, "due_date", path)),
            "issued_at": iso(issued_at),
            "attempt_count": reader.count(obj, "attempt_count", path, _MAX_QUANTITY),
            "last_failure": _last_failure(reader, obj, path),
            "attributes": attributes,
        }
    )


def _subscription(
    reader: Reader, obj: dict[str, Any], path: str, context: dict[str, Any], changed: list[str]
) -> dict[str, Any]:
    subscription_id = reader.req_key(obj, "id", path)
    customer = _ref(reader, obj, "customer", path)
    if customer is None:
        reader.missing(child(path, "customer"), "the subscription's customer")
    stripe_status = reader.req_text(obj, "status", path)
    status = _SUBSCRIPTION_STATUS_ALIASES.get(stripe_status, stripe_status)
    if status not in _SUBSCRIPTION_STATUSES:
        reader.fail(child(path, "status"), f"unknown Stripe subscription status {stripe_status!r}", "unsupported")

    items_path = f"{path}.items"
    items_list = reader.opt_obj(obj, "items", path) or {}
    items = [
        reader.obj(item, f"{items_path}.data[{index}]")
        for index, item in enumerate(reader.opt_list(items_list, "data", items_path))
    ]
    first = items[0] if items else {}
    first_path = f"{items_path}.data[0]"
    # The plan name: the first item's price (Prices API) or plan (legacy Plans API), or the plan on
    # the subscription itself (API versions before subscription items).
    plan = None
    currency_text = reader.text(obj, "currency", path)
    for holder, key, holder_path in ((first, "price", first_path), (first, "plan", first_path), (obj, "plan", path)):
        price = reader.opt_obj(holder, key, holder_path)
        if price is None:
            continue
        price_path = child(holder_path, key)
        plan = plan or reader.text(price, "nickname", price_path) or reader.text(price, "id", price_path)
        currency_text = currency_text or reader.text(price, "currency", price_path)
    if plan is None:
        reader.missing(f"{first_path}.price", "the subscription's price or plan")
    currency = currency_text.upper() if currency_text and _CURRENCY.match(currency_text) else None
    quantity = reader.count(first, "quantity", first_path, _MAX_QUANTITY)
    if quantity is None:
        quantity = reader.count(obj, "quantity", path, _MAX_QUANTITY)
    pause = obj.get("pause_collection")

    attributes = drop_none(
        {
            **context,
            "stripe_status": stripe_status if stripe_status != status else None,
            "price_ids": [pid for pid in (_price_id(item) for item in items) if pid] or None,
            "item_count": len(items) if len(items) > 1 else None,
            "cancel_at_period_end": obj.get("cancel_at_period_end") if obj.get("cancel_at_period_end") else None,
            "collection_method": reader.text(obj, "collection_method", path),
            "current_period_end": iso(
                reader.epoch(obj, "current_period_end", path) or reader.epoch(first, "current_period_end", first_path)
            ),
            "trial_end": iso(reader.epoch(obj, "trial_end", path)),
            "pause_behavior": reader.text(pause, "behavior", child(path, "pause_collection"))
            if isinstance(pause, dict)
            else None,
            "changed_fields": changed or None,
        }
    )
    ends_at: datetime | None = reader.epoch(obj, "ended_at", path) or reader.epoch(obj, "cancel_at", path)
    return drop_none(
        {
            "id": f"stripe:{subscription_id}",
            "external_ids": {"billing_id": subscription_id},
            "account_id": f"stripe-customer:{customer}",
            "plan": clip(plan, TITLE_LIMIT),
            "status": status,
            "quantity": 1 if quantity is None else quantity,
            "mrr": _mrr(reader, items, items_path, currency),
            "currency": currency,
            "started_at": iso(reader.epoch(obj, "start_date", path)),
            "ends_at": iso(ends_at),
            "collection_paused": isinstance(pause, dict),
            "attributes": attributes,
        }
    )


def _mrr(reader: Reader, items: list[dict[str, Any]], items_path: str, currency: str | None) -> str | None:
    """Monthly recurring revenue in major units, or None when it cannot be read off the prices.

    Only licensed per-unit prices billed monthly or yearly have a monthly value that the subscription
    alone determines; metered, tiered, weekly or daily prices leave MRR to the billing system.
    """
    if currency is None or not items:
        return None
    monthly_minor = Decimal(0)
    for index, item in enumerate(items):
        item_path = f"{items_path}.data[{index}]"
        price = reader.opt_obj(item, "price", item_path)
        if price is not None:
            recurring = reader.opt_obj(price, "recurring", f"{item_path}.price") or {}
            interval = reader.text(recurring, "interval", f"{item_path}.price.recurring")
            count = reader.integer(recurring, "interval_count", f"{item_path}.price.recurring") or 1
            usage = reader.text(recurring, "usage_type", f"{item_path}.price.recurring")
            unit_amount = reader.count(price, "unit_amount", f"{item_path}.price", _MAX_MINOR)
        else:
            # Items created through the legacy Plans API carry only a plan.
            plan = reader.opt_obj(item, "plan", item_path) or {}
            interval = reader.text(plan, "interval", f"{item_path}.plan")
            count = reader.integer(plan, "interval_count", f"{item_path}.plan") or 1
            usage = reader.text(plan, "usage_type", f"{item_path}.plan")
            unit_amount = reader.count(plan, "amount", f"{item_path}.plan", _MAX_MINOR)
        months = _MONTHS_PER_INTERVAL.get(interval or "")
        if months is None or unit_amount is None or usage == "metered" or count <= 0:
            return None
        quantity = reader.count(item, "quantity", item_path, _MAX_QUANTITY)
        monthly_minor += Decimal(unit_amount) * (1 if quantity is None else quantity) / (months * count)
    return _major_decimal(monthly_minor, currency)


def _currency(reader: Reader, obj: dict[str, Any], path: str) -> str:
    text = reader.req_text(obj, "currency", path)
    if not _CURRENCY.match(text):
        reader.fail(child(path, "currency"), f"expected a three-letter ISO 4217 code, got {text!r}", "format")
    return text.upper()


def _exponent(currency: str) -> int:
    if currency in _ZERO_DECIMAL:
        return 0
    if currency in _THREE_DECIMAL:
        return 3
    return 2


def _major(amount: int | None, currency: str) -> str | None:
    """A minor-unit integer as a major-unit decimal string: (1999, "EUR") -> "19.99", (500, "JPY") -> "500"."""
    if amount is None:
        return None
    return str(Decimal(amount).scaleb(-_exponent(currency)))


def _major_decimal(amount: Decimal, currency: str) -> str | None:
    major = amount.scaleb(-_exponent(currency))
    if major >= _MAX_MAJOR:
        # Beyond what the canonical Amount holds; MRR is derived, so it is left out rather than refused.
        return None
    value = major.quantize(_AMOUNT_QUANTUM, rounding=ROUND_HALF_EVEN)
    # normalize() drops the zeros quantize added ("49.5000" -> "49.5"); format "f" keeps it out of
    # exponent notation ("1E+2" -> "100").
    return format(value.normalize(), "f")


def _ref(reader: Reader, obj: dict[str, Any], key: str, path: str) -> str | None:
    """An expandable reference: Stripe sends either the id or, when expanded, the object with its id."""
    value = obj.get(key)
    if isinstance(value, dict):
        return reader.key(value, "id", child(path, key))
    return reader.key(obj, key, path)


def _parent_subscription(reader: Reader, obj: dict[str, Any], path: str) -> str | None:
    """The subscription of an invoice in API versions from 2025-03-31 (``parent.subscription_details``)."""
    parent = reader.opt_obj(obj, "parent", path) or {}
    details = reader.opt_obj(parent, "subscription_details", child(path, "parent")) or {}
    return _ref(reader, details, "subscription", f"{path}.parent.subscription_details")


def _last_failure(reader: Reader, obj: dict[str, Any], path: str) -> str | None:
    """Why the last attempt failed, from whichever of the invoice's related objects says so."""
    error = reader.opt_obj(obj, "last_finalization_error", path)
    if error and (message := reader.text(error, "message", child(path, "last_finalization_error"))):
        return message
    charge = obj.get("charge")
    if isinstance(charge, dict):
        message = reader.text(charge, "failure_message", child(path, "charge"))
        if message:
            return message
    intent = obj.get("payment_intent")
    if isinstance(intent, dict):
        payment_error = reader.opt_obj(intent, "last_payment_error", child(path, "payment_intent"))
        if payment_error:
            return reader.text(payment_error, "message", f"{path}.payment_intent.last_payment_error")
    return None


def _price_id(item: dict[str, Any]) -> str | None:
    for key in ("price", "plan"):
        value = item.get(key)
        if isinstance(value, dict) and isinstance(value.get("id"), str):
            return str(value["id"])
    return None
