"""Operational objects: incidents, implementation work, escalations and approvals."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from opsrail.model._common import Amount, CanonicalObject, Currency, Name, Text
from opsrail.model._time import UtcMoment

IncidentStatus = Literal["new", "open", "in_progress", "on_hold", "resolved", "closed", "cancelled"]


class Incident(CanonicalObject):
    """A customer-affecting problem from an ITSM tool, a support desk or monitoring."""

    title: Name
    description: Text | None = None
    severity: int | None = Field(default=None, ge=1, le=4, description="1 is the most severe (Sev1)")
    priority: str | None = Field(default=None, description="the source system's own priority label")
    status: IncidentStatus = "new"
    impact: str | None = None
    urgency: str | None = None
    category: str | None = None
    subcategory: str | None = None
    account_id: str | None = None
    service: str | None = Field(default=None, description="affected service or configuration item")
    assignment_group: str | None = None
    assignee: str | None = None
    reporter: str | None = None
    opened_at: UtcMoment | None = None
    updated_at: UtcMoment | None = None
    resolved_at: UtcMoment | None = None
    closed_at: UtcMoment | None = None
    sla_met: bool | None = None
    reassignment_count: int | None = Field(default=None, ge=0)
    reopen_count: int | None = Field(default=None, ge=0)
    labels: list[str] = Field(default_factory=list)
    url: str | None = None


class ImplementationTask(CanonicalObject):
    """A unit of onboarding or delivery work: provision a tenant, configure SSO, migrate data."""

    name: Name
    account_id: str
    order_id: str | None = None
    project_id: str | None = None
    milestone: str | None = None
    status: Literal["pending", "in_progress", "blocked", "done", "cancelled"] = "pending"
    owner: str | None = None
    due_at: UtcMoment | None = None
    completed_at: UtcMoment | None = None
    blocked_reason: Text | None = None


class Escalation(CanonicalObject):
    incident_id: str | None = None
    account_id: str | None = None
    level: int = Field(default=1, ge=1, le=10)
    reason: Text
    target_team: str | None = None
    status: Literal["open", "acknowledged", "resolved", "cancelled"] = "open"
    opened_at: UtcMoment | None = None
    resolved_at: UtcMoment | None = None


class Approval(CanonicalObject):
    subject_kind: str = Field(description="the kind of object asked about, e.g. credit")
    subject_id: str
    requested_by: str
    roles: list[str] = Field(default_factory=list, description="roles that may approve")
    required_approvals: int = Field(default=1, ge=1, le=10)
    status: Literal["pending", "approved", "rejected", "expired", "cancelled"] = "pending"
    decided_by: list[str] = Field(default_factory=list)
    amount: Amount | None = None
    currency: Currency | None = None
    reason: Text | None = None
    due_at: UtcMoment | None = None
