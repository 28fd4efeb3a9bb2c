"""Commercial objects: who the customer is, what they bought, what they are billed and credited."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Literal

from pydantic import Field

from opsrail.model._common import Amount, CanonicalObject, Currency, Name, Strict, Text
from opsrail.model._time import UtcMoment


class LegalEntity(CanonicalObject):
    """The subsidiary that contracts with a customer or vendor."""

    name: Name
    region: str
    country: str = Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2")
    currency: Currency
    tax_id: str | None = None
    tax_regime: Literal["vat", "gst", "sales_tax", "none"] = "vat"
    tax_rate: Amount | None = Field(default=None, ge=0, le=1, description="standard rate as a fraction")


class Account(CanonicalObject):
    name: Name
    status: Literal["prospect", "onboarding", "active", "suspended", "offboarding", "churned"] = "active"
    legal_entity_id: str | None = None
    owner: str | None = Field(default=None, description="account executive")
    csm: str | None = Field(default=None, description="customer success manager")
    industry: str | None = None
    arr: Amount | None = Field(default=None, ge=0)
    currency: Currency | None = None


class Subscription(CanonicalObject):
    account_id: str
    plan: Name
    status: Literal["trialing", "active", "past_due", "paused", "canceled", "incomplete", "unpaid"]
    quantity: int = Field(default=1, ge=0)
    mrr: Amount | None = Field(default=None, ge=0)
    currency: Currency | None = None
    started_at: UtcMoment | None = None
    ends_at: UtcMoment | None = None
    billing_start_date: date | None = None
    collection_paused: bool = False
    legal_entity_id: str | None = None


class Entitlement(CanonicalObject):
    account_id: str
    subscription_id: str | None = None
    feature: Name = Field(description="SKU or feature key, e.g. sso, premium_support")
    quantity: int | None = Field(default=None, ge=0)
    support_level: Literal["basic", "standard", "premium", "enterprise"] | None = None
    starts_at: date | None = None
    ends_at: date | None = None


class OrderLine(Strict):
    sku: Name
    description: str | None = None
    quantity: int = Field(ge=1)
    unit_price: Amount = Field(ge=0)


class Order(CanonicalObject):
    account_id: str
    quote_id: str | None = None
    status: Literal["draft", "signed", "provisioning", "provisioned", "active", "cancelled"]
    signed_at: UtcMoment | None = None
    lines: list[OrderLine] = Field(default_factory=list)
    total: Amount | None = Field(default=None, ge=0)
    currency: Currency | None = None
    go_live_billing_rule: Literal["on_signature", "on_go_live", "on_date"] | None = None
    billing_start_date: date | None = None
    onboarding_terms: str | None = Field(default=None, description="what onboarding effort the contract includes")


class Quote(CanonicalObject):
    account_id: str
    status: Literal["draft", "submitted", "approved", "rejected", "signed", "expired"]
    lines: list[OrderLine] = Field(default_factory=list)
    amount: Amount = Field(ge=0)
    currency: Currency
    discount_pct: Amount = Field(default=Decimal(0), ge=0, le=100)
    non_standard_clauses: list[str] = Field(default_factory=list)
    valid_until: date | None = None
    legal_entity_id: str | None = None


class Invoice(CanonicalObject):
    account_id: str | None = None
    subscription_id: str | None = None
    number: str | None = None
    status: Literal["draft", "open", "paid", "void", "uncollectible", "on_hold"]
    amount_due: Amount = Field(ge=0)
    amount_paid: Amount = Field(default=Decimal(0), ge=0)
    currency: Currency
    due_date: date | None = None
    issued_at: UtcMoment | None = None
    on_hold: bool = False
    hold_reason: Text | None = None
    billing_start_date: date | None = None
    attempt_count: int = Field(default=0, ge=0)
    last_failure: Text | None = Field(default=None, description="why the last payment attempt failed")
    legal_entity_id: str | None = None


class Credit(CanonicalObject):
    account_id: str
    invoice_id: str | None = None
    incident_id: str | None = None
    amount: Amount = Field(gt=0)
    currency: Currency
    reason: Text
    status: Literal["requested", "provisional", "approved", "rejected", "issued", "voided"] = "requested"


class ChangeOrder(CanonicalObject):
    account_id: str
    order_id: str | None = None
    project_id: str | None = None
    description: Text
    amount: Amount = Field(ge=0)
    currency: Currency
    effort_hours: Amount | None = Field(default=None, ge=0)
    status: Literal["draft", "pending_approval", "approved", "rejected", "signed", "cancelled"] = "draft"


class Vendor(CanonicalObject):
    name: Name
    legal_entity_id: str | None = None
    country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    tax_id: str | None = None
    iban: str | None = None
    payment_terms_days: int | None = Field(default=None, ge=0, le=365)
    status: Literal["pending", "approved", "blocked"] = "pending"
