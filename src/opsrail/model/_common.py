"""Building blocks shared by the canonical objects: identifiers, segments, money."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 currency code, e.g. EUR")]
Amount = Annotated[Decimal, Field(max_digits=18, decimal_places=4)]
Text = Annotated[str, Field(max_length=20_000)]
Name = Annotated[str, Field(min_length=1, max_length=512)]
ObjectId = Annotated[
    str,
    Field(min_length=1, max_length=256, description="Opsrail's id of the object, usually '<system>:<native key>'"),
]


class Strict(BaseModel):
    """Base for canonical value objects: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, populate_by_name=True)


class ExternalIds(Strict):
    """The identifiers the company's own systems use for the same object."""

    crm_id: str | None = Field(default=None, description="CRM id (Salesforce, HubSpot)")
    erp_id: str | None = Field(default=None, description="ERP id (ERPNext, NetSuite, SAP)")
    billing_id: str | None = Field(default=None, description="billing system id (Stripe, Chargebee)")
    itsm_id: str | None = Field(default=None, description="ITSM id (ServiceNow, Jira, Zendesk)")
    psa_id: str | None = Field(default=None, description="professional-services automation id")


class Segment(Strict):
    """The attributes that later analysis compares outcomes across."""

    region: str | None = Field(default=None, description="sales or service region, e.g. EMEA")
    channel: str | None = Field(default=None, description="how the customer came or reports: direct, partner, web")
    product_line: str | None = None
    tier: str | None = Field(default=None, description="customer tier: enterprise, mid_market, smb")
    entity: str | None = Field(default=None, description="id of the legal entity that contracts")


class CanonicalObject(Strict):
    """Every canonical object has an id, the external ids and segment attributes, and free attributes."""

    id: ObjectId
    external_ids: ExternalIds | None = None
    segment: Segment | None = None
    attributes: dict[str, Any] | None = Field(
        default=None, description="source-specific fields kept for reference and analysis"
    )
