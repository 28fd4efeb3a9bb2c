"""The built-in ledger: the system of record for teams without an ERP, and the default in the demo.

Collections hold canonical objects (subscriptions, entitlements, invoices, credit memos, change orders) and the
ledger's own records (contracts, projects with milestones, time postings). Records change only through named
actions with explicit transitions (hold an invoice, approve a credit memo, validate a change order…). Every change
is written with its event in one transaction: canonical kinds as ``com.opsrail.<kind>.<verb>``, the ledger's own
records as ``opsrail.ledger.<record>.<verb>``, from source ``opsrail/ledger``, so playbooks can be triggered by
them. Writes are idempotent: the same key with the same request answers what it answered the first time; the
same key with another request is refused.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal, Protocol

import orjson
from pydantic import BaseModel, Field, ValidationError

from opsrail.engine import holds_writes
from opsrail.model import (
    ChangeOrder,
    Clock,
    Conflict,
    Credit,
    Entitlement,
    FieldError,
    IdFactory,
    InvalidInput,
    Invoice,
    NotFound,
    Subscription,
)
from opsrail.model._common import Amount, Name, Strict, Text
from opsrail.services._audit import Auditor, not_audited

SOURCE = "opsrail/ledger"


class Contract(Strict):
    id: str
    account_id: str
    name: Name
    starts_on: date
    ends_on: date | None = None
    onboarding_terms: Text | None = Field(default=None, description="what onboarding effort the contract includes")
    status: Literal["active", "terminated"] = "active"


class Milestone(Strict):
    name: Name
    due_on: date | None = None
    status: Literal["pending", "in_progress", "blocked", "done"] = "pending"


class Project(Strict):
    id: str
    account_id: str
    name: Name
    milestones: list[Milestone] = Field(default_factory=list)
    status: Literal["open", "closed"] = "open"


class TimePosting(Strict):
    id: str
    account_id: str | None = None
    project_id: str
    person: Name
    hours: Amount = Field(gt=0, le=24)
    activity: Name
    posted_on: date
    note: Text | None = None


@dataclass(frozen=True, slots=True)
class Collection:
    model: type[BaseModel]
    kind: str | None  # the canonical kind its events carry, or None for the ledger's own records
    record: str  # singular name in event types and messages
    prefix: str
    initial: dict[str, Any]


COLLECTIONS: dict[str, Collection] = {
    "contracts": Collection(Contract, None, "contract", "ctr", {}),
    "subscriptions": Collection(Subscription, "subscription", "subscription", "sub", {"status": "active"}),
    "entitlements": Collection(Entitlement, "entitlement", "entitlement", "ent", {}),
    "invoices": Collection(Invoice, "invoice", "invoice", "inv", {"status": "draft"}),
    "credit-memos": Collection(Credit, "credit", "credit memo", "cm", {"status": "provisional"}),
    "change-orders": Collection(ChangeOrder, "change_order", "change order", "co", {"status": "pending_approval"}),
    "projects": Collection(Project, None, "project", "prj", {}),
    "time-postings": Collection(TimePosting, None, "time posting", "tp", {}),
}

Transition = Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]


def _need(record: dict[str, Any], field: str, allowed: Sequence[Any], what: str) -> None:
    if record.get(field) not in allowed:
        raise Conflict(
            f"cannot {what}: it is {record.get(field)}",
            hint=f"possible only when {field} is {', '.join(map(str, allowed))}",
        )


def _param(params: dict[str, Any], name: str) -> Any:
    if params.get(name) in (None, ""):
        raise InvalidInput(f"this action needs `{name}`", errors=[FieldError(f"$.{name}", "required", "missing")])
    return params[name]


def _hold(r: dict[str, Any], p: dict[str, Any]) -> dict[str, Any]:
    _need(r, "status", ("draft", "open", "on_hold"), "hold the invoice")
    return {
        **r,
        "on_hold": True,
        "hold_reason": _param(p, "reason"),
        "status": "on_hold",
        "attributes": {**(r.get("attributes") or {}), "status_before_hold": r["status"]}
        if r["status"] != "on_hold"
        else r.get("attributes"),
    }


def _release(r: dict[str, Any], p: dict[str, Any]) -> dict[str, Any]:
    _need(r, "status", ("on_hold",), "release the invoice")
    attributes = dict(r.get("attributes") or {})
    before = attributes.pop("status_before_hold", "open")
    return {**r, "on_hold": False, "hold_reason": None, "status": before, "attributes": attributes or None}


def _billing_start(r: dict[str, Any], p: dict[str, Any]) -> dict[str, Any]:
    return {**r, "billing_start_date": _param(p, "date")}


def _finalize(r: dict[str, Any], p: dict[str, Any]) -> dict[str, Any]:
    _need(r, "status", ("draft",), "finalize the invoice")
    return {**r, "status": "open"}


def _void_invoice(r: dict[str, Any], p: dict[str, Any]) -> dict[str, Any]:
    _need(r, "status", ("draft", "open", "on_hold"), "void the invoice")
    return {**r, "status": "void", "on_hold": False, "hold_reason": _param(p, "reason")}


def _pause(r: dict[str, Any], p: dict[str, Any]) -> dict[str, Any]:
    return {**r, "collection_paused": True}


def _resume(r: dict[str, Any], p: dict[str, Any]) -> dict[str, Any]:
    return {**r, "collection_paused": False}


def _cancel_subscription(r: dict[str, Any], p: dict[str, Any]) -> dict[str, Any]:
    _need(r, "status", ("trialing", "active", "past_due", "paused", "unpaid", "incomplete"), "cancel it")
    return {**r, "status": "canceled", "ends_at": p.get("at") or r.get("ends_at")}


def _approve_credit(r: dict[str, Any], p: dict[str, Any]) -> dict[str, Any]:
    _need(r, "status", ("requested", "provisional"), "approve the credit memo")
    return {**r, "status": "approved", "attributes": {**(r.get("attributes") or {}), "approved_by": _param(p, "by")}}


def _void_credit(r: dict[str, Any], p: dict[str, Any]) -> dict[str, Any]:
    _need(r, "status", ("requested", "provisional", "approved"), "void the credit memo")
    return {**r, "status": "voided", "attributes": {**(r.get("attributes") or {}), "void_reason": _param(p, "reason")}}


def _validate_change(r: dict[str, Any], p: dict[str, Any]) -> dict[str, Any]:
    _need(r, "status", ("draft", "pending_approval"), "validate the change order")
    return {**r, "status": "approved", "attributes": {**(r.get("attributes") or {}), "validated_by": _param(p, "by")}}


def _reject_change(r: dict[str, Any], p: dict[str, Any]) -> dict[str, Any]:
    _need(r, "status", ("draft", "pending_approval"), "reject the change order")
    return {**r, "status": "rejected", "attributes": {**(r.get("attributes") or {}), "reason": _param(p, "reason")}}


def _update_milestone(r: dict[str, Any], p: dict[str, Any]) -> dict[str, Any]:
    name = _param(p, "milestone")
    milestones = [dict(m) for m in r.get("milestones", [])]
    found = next((m for m in milestones if m["name"] == name), None)
    if found is None:
        raise NotFound(
            f"project {r['id']} has no milestone {name!r}",
            hint=f"its milestones: {', '.join(m['name'] for m in milestones) or 'none'}",
        )
    if "status" in p:
        found["status"] = p["status"]
    if "due_on" in p:
        found["due_on"] = p["due_on"]
    return {**r, "milestones": milestones}


def _close_project(r: dict[str, Any], p: dict[str, Any]) -> dict[str, Any]:
    _need(r, "status", ("open",), "close the project")
    return {**r, "status": "closed"}


def _terminate(r: dict[str, Any], p: dict[str, Any]) -> dict[str, Any]:
    _need(r, "status", ("active",), "terminate the contract")
    return {**r, "status": "terminated", "ends_on": _param(p, "on")}


ACTIONS: dict[str, dict[str, tuple[str, Transition]]] = {
    "invoices": {
        "hold": ("held", _hold),
        "release": ("released", _release),
        "set-billing-start": ("updated", _billing_start),
        "finalize": ("finalized", _finalize),
        "void": ("voided", _void_invoice),
    },
    "subscriptions": {
        "pause-collection": ("collection_paused", _pause),
        "resume-collection": ("collection_resumed", _resume),
        "set-billing-start": ("updated", _billing_start),
        "cancel": ("canceled", _cancel_subscription),
    },
    "credit-memos": {"approve": ("approved", _approve_credit), "void": ("voided", _void_credit)},
    "change-orders": {"validate": ("approved", _validate_change), "reject": ("rejected", _reject_change)},
    "projects": {"update-milestone": ("milestone_updated", _update_milestone), "close": ("closed", _close_project)},
    "contracts": {"terminate": ("terminated", _terminate)},
}
APPROVALS = {("credit-memos", "approve"), ("change-orders", "validate")}


class LedgerStore(Protocol):
    def get(self, collection: str, record_id: str) -> tuple[dict[str, Any], int] | None: ...

    def find(self, collection: str, account_id: str | None, limit: int) -> list[dict[str, Any]]: ...

    def remembered(self, key: str) -> tuple[str, dict[str, Any]] | None: ...

    def apply(
        self,
        collection: str,
        record_id: str,
        account_id: str | None,
        data: dict[str, Any],
        expect_version: int | None,
        emitted: Sequence[dict[str, Any]],
        at: datetime,
        request: tuple[str, str, dict[str, Any]] | None = None,
    ) -> int: ...


class LedgerService:
    def __init__(self, store: LedgerStore, clock: Clock, ids: IdFactory) -> None:
        self.store = store
        self.clock = clock
        self.ids = ids
        self.audit: Auditor = not_audited

    def collections(self) -> dict[str, list[str]]:
        return {name: sorted(ACTIONS.get(name, {})) for name in COLLECTIONS}

    def get(self, collection: str, record_id: str) -> dict[str, Any]:
        spec = _collection(collection)
        found = self.store.get(collection, record_id)
        if found is None:
            raise NotFound(f"no {spec.record} {record_id!r}", hint=f"list them with GET /v1/ledger/{collection}")
        return found[0]

    def list(self, collection: str, account_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        _collection(collection)
        return self.store.find(collection, account_id, limit)

    def create(
        self, collection: str, body: dict[str, Any], *, actor: str | None = None, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        spec = _collection(collection)
        replay = self._replayed(idempotency_key, ("create", collection, body))  # the same request as below
        if replay is not None:
            return replay
        record_id = str(body.get("id") or self.ids.new(spec.prefix))
        data = self._validated(spec, {**spec.initial, **body, "id": record_id})
        return self._write(
            collection, spec, record_id, data, None, "created", actor, idempotency_key, ("create", collection, body)
        )

    def act(
        self,
        collection: str,
        record_id: str,
        action: str,
        params: dict[str, Any] | None = None,
        *,
        actor: str | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        spec = _collection(collection)
        params = dict(params or {})
        transitions = ACTIONS.get(collection, {})
        if action not in transitions:
            raise InvalidInput(
                f"{spec.record}s have no action {action!r}",
                hint=f"actions: {', '.join(sorted(transitions)) or 'none'}",
            )
        request = ("act", collection, record_id, action, params)
        replay = self._replayed(idempotency_key, request)
        if replay is not None:
            return replay
        found = self.store.get(collection, record_id)
        if found is None:
            raise NotFound(f"no {spec.record} {record_id!r}", hint=f"list them with GET /v1/ledger/{collection}")
        current, version = found
        verb, transition = transitions[action]
        data = self._validated(spec, transition(current, params))
        return self._write(collection, spec, record_id, data, version, verb, actor, idempotency_key, request)

    # -- internals -----------------------------------------------------------------------------------------------

    def _replayed(self, key: str | None, request: Any) -> dict[str, Any] | None:
        if key is None or holds_writes():
            # Inside a step the write is held for the step's commit, where the key's primary key refuses a key
            # used before; the step is then executed again without holding and replays from here. Looking first
            # would cost a read on every step for what a retry after a crash needs.
            return None
        found = self.store.remembered(key)
        if found is None:
            return None
        fingerprint, response = found
        if fingerprint != _fingerprint(request):
            raise Conflict(
                "this idempotency key was used for a different request",
                hint="use a new key for a new request; the same key only repeats the same request",
            )
        return response

    def _validated(self, spec: Collection, data: dict[str, Any]) -> dict[str, Any]:
        try:
            model = spec.model.model_validate(data)
        except ValidationError as exc:
            raise InvalidInput(
                f"not a valid {spec.record}",
                errors=[
                    FieldError("$." + ".".join(str(p) for p in e["loc"]), str(e["msg"]), str(e["type"]))
                    for e in exc.errors()[:20]
                ],
            ) from None
        dumped: dict[str, Any] = model.model_dump(mode="json", exclude_none=True)
        return dumped

    def _write(
        self,
        collection: str,
        spec: Collection,
        record_id: str,
        data: dict[str, Any],
        version: int | None,
        verb: str,
        actor: str | None,
        key: str | None,
        request: Any,
    ) -> dict[str, Any]:
        at = self.clock.now()
        next_version = (version or 0) + 1
        event = _event(spec, collection, record_id, data, verb, next_version, at)
        remembered = (key, _fingerprint(request), data) if key is not None else None
        try:
            self.store.apply(collection, record_id, data.get("account_id"), data, version, [event], at, remembered)
        except Conflict:
            if key is not None and (replay := self._replayed(key, request)) is not None:
                return replay  # a concurrent twin of this request finished first
            raise
        self.audit(
            actor,
            f"ledger.{spec.record.replace(' ', '_')}.{verb}",
            record_id,
            {"collection": collection, "idempotency_key": key, "version": next_version},
        )
        return data


def _collection(name: str) -> Collection:
    spec = COLLECTIONS.get(name)
    if spec is None:
        raise NotFound(f"the ledger has no collection {name!r}", hint=f"collections: {', '.join(COLLECTIONS)}")
    return spec


def _fingerprint(request: Any) -> str:
    return hashlib.sha256(orjson.dumps(request, option=orjson.OPT_SORT_KEYS, default=str)).hexdigest()


def _event(
    spec: Collection, collection: str, record_id: str, data: dict[str, Any], verb: str, version: int, at: datetime
) -> dict[str, Any]:
    record = spec.record.replace(" ", "_")
    return {
        "source": SOURCE,
        "event_id": f"{collection}:{record_id}:v{version}",
        "type": f"com.opsrail.{spec.kind}.{verb}" if spec.kind else f"opsrail.ledger.{record}.{verb}",
        "subject": record_id,
        "time": at,
        "received_at": at,
        "kind": spec.kind,
        "object_id": record_id if spec.kind else None,
        "channel": "ledger",
        "attributes": {},
        "data": data,
    }
