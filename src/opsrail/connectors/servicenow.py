"""The ServiceNow connector: create, update and read incidents through the Table API.

The Table API (``/api/now/table/incident``) takes and returns JSON wrapped in ``{"result": ...}``, authenticates with
HTTP basic auth, and answers errors as ``{"error": {"message", "detail"}, "status": "failure"}``;
:func:`servicenow_error_message` turns that body into the error's message. 4xx are permanent; 429 (with
``Retry-After``, sent when an inbound rate-limit rule fires) and 5xx are retried by the shared
:class:`~opsrail.connectors.HttpTransport`. Requests ask for ``sysparm_exclude_reference_link=true``, so reference
fields (``assignment_group``, ``caller_id``) come back as plain sys_ids.

The Table API has no idempotency keys, so ``create_incident`` is made idempotent with the incident's
``correlation_id`` (by default the engine's idempotency key, stable across a step's attempts): it first looks for an
incident carrying it (``sysparm_query=correlation_id=<key>``, oldest first, ``sysparm_limit=1``) and creates one
only if there is none. The create itself is never re-sent blindly: after a 5xx, a 429 or a timeout, whose incident
may or may not exist, the connector looks again before creating (within the HTTP policy's retries and backoff).
Two runs creating with the same correlation id at the same moment can still both create: the Table API offers no
lock. ``correlation_id`` is at most 100 characters and encoded queries split on ``^``, so a derived key that is
longer or contains ``^`` is replaced by ``opsrail-`` and 40 hex digits of its SHA-256. ``correlation_display`` is
set to ``opsrail``.

``update_incident`` PATCHes fields and adds a work note; a retry after a lost answer sets the same fields again but
adds the work note a second time (journal fields append).

Settings: ``base_url`` (the instance, e.g. ``https://acme.service-now.com``), ``username``, and ``password`` or
``password_file`` (the first line of the file). Missing settings do not stop the connector from being built:
:meth:`ServiceNowConnector.check` reports them and every operation fails permanently with the reason.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import random
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Self

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

TABLE = "/api/now/table/incident"
USER_AGENT = "opsrail-connector-servicenow/0.1"
MAX_CORRELATION_ID = 100  # the length of task.correlation_id in a base instance
FIELDS = (
    "sys_id,number,short_description,description,state,urgency,impact,priority,assignment_group,caller_id,"
    "correlation_id,sys_updated_on"
)

_SYS_ID = r"^[0-9a-f]{32}$"


# -- operation inputs and outputs --------------------------------------------------------------------------------


class CreateIncident(Model):
    """Open an incident, once per ``correlation_id`` (default: the engine's idempotency key for the step)."""

    short_description: str = Field(min_length=1, max_length=160)
    description: str | None = None
    urgency: int | None = Field(default=None, ge=1, le=3, description="1 high, 2 medium, 3 low")
    impact: int | None = Field(default=None, ge=1, le=3, description="1 high, 2 medium, 3 low")
    assignment_group: str | None = Field(default=None, min_length=1, description="a group's sys_id or name")
    caller_id: str | None = Field(default=None, min_length=1, description="a user's sys_id or user name")
    correlation_id: str | None = Field(
        default=None, min_length=1, max_length=MAX_CORRELATION_ID, pattern=r"^[^\^]+$", description="no ^"
    )


class IncidentCreated(Model):
    sys_id: str
    number: str
    created: bool = Field(description="false when an incident with this correlation_id already existed")


class UpdateIncident(Model):
    """Set fields on an incident and/or add a work note."""

    sys_id: str = Field(pattern=_SYS_ID)
    fields: dict[str, Any] = Field(default_factory=dict, description="field name to value, e.g. {state: 2}")
    work_notes: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _something_to_do(self) -> Self:
        if not self.fields and self.work_notes is None:
            raise ValueError("give fields, work_notes or both")
        system = sorted(name for name in self.fields if name.startswith("sys_") or name == "number")
        if system:
            raise ValueError(f"system fields are set by ServiceNow: {', '.join(system)}")
        if "work_notes" in self.fields:
            raise ValueError("give the work note as work_notes, not in fields")
        return self


class GetIncident(Model):
    sys_id: str = Field(pattern=_SYS_ID)


class Incident(Model):
    """An incident's main fields, as ServiceNow's raw values (choice fields are numbers as strings)."""

    sys_id: str
    number: str
    short_description: str = ""
    description: str = ""
    state: str = ""
    urgency: str = ""
    impact: str = ""
    priority: str = ""
    assignment_group: str = ""
    caller_id: str = ""
    correlation_id: str = ""
    sys_updated_on: str = ""


# -- wire format -------------------------------------------------------------------------------------------------


def correlation_id_for(key: str) -> str:
    """The engine's idempotency key as a correlation_id: itself, unless too long for the field or holding ``^``."""
    if len(key) <= MAX_CORRELATION_ID and "^" not in key:
        return key
    return "opsrail-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:40]


def servicenow_error_message(response: httpx.Response) -> str:
    """``No Record found: Record doesn't exist or ACL restricts the record retrieval``."""
    try:
        body = response.json()
    except ValueError:
        return default_error(response)
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return default_error(response)
    message = str(error.get("message") or response.reason_phrase)
    detail = error.get("detail")
    return (f"{message}: {detail}" if detail and detail != message else message)[:500]


def _text(value: Any) -> str:
    """A field's raw value as text; a reference link object (``{"link", "value"}``) gives its value."""
    if isinstance(value, Mapping):
        value = value.get("value")
    return "" if value is None else str(value)


def _incident(record: Any) -> Incident:
    if not isinstance(record, Mapping):
        raise ConnectorError("servicenow: the answer's result is not a record", retryable=False)
    values = {name: _text(record.get(name)) for name in Incident.model_fields}
    if not values["sys_id"] or not values["number"]:
        raise ConnectorError("servicenow: the incident came back without sys_id and number", retryable=False)
    return Incident(**values)


# -- the connector -----------------------------------------------------------------------------------------------


class ServiceNowConnector(Connector):
    """ServiceNow ITSM incidents through the Table API (see the module's description for settings and guarantees)."""

    name = "servicenow"
    summary = "ServiceNow ITSM: create (idempotently by correlation_id), update and read incidents"

    def __init__(
        self,
        config: Mapping[str, Any],
        client: httpx.AsyncClient,
        *,
        policy: HttpPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.problem: str | None = None
        self.policy = policy or HttpPolicy()
        self.sleep = sleep
        base_url = str(config.get("base_url") or "")
        username = str(config.get("username") or "")
        try:
            password = secret(config, "password", self.name)
        except OperationFailed as exc:
            password, self.problem = None, str(exc)
        missing = [
            name
            for name, value in (("base_url", base_url), ("username", username), ("password or password_file", password))
            if not value
        ]
        if missing and self.problem is None:
            self.problem = f"servicenow: missing settings: {', '.join(missing)}"
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if username and password:
            token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
            headers["Authorization"] = f"Basic {token}"
        self.http = HttpTransport(
            self.name,
            client,
            base_url or "http://servicenow.invalid",
            headers=headers,
            policy=self.policy,
            error_message=servicenow_error_message,
            sleep=sleep,
        )
        # Creates are sent once per look-up (see _create); they share the breaker and the rate limit.
        self.http_once = HttpTransport(
            self.name,
            client,
            self.http.base_url,
            headers=headers,
            policy=dataclasses.replace(self.policy, retries=0),
            error_message=servicenow_error_message,
            sleep=sleep,
        )
        self.http_once.breaker = self.http.breaker
        self.http_once.limiter = self.http.limiter

    def operations(self) -> list[OperationSpec]:
        return [
            OperationSpec(
                "create_incident",
                "open an incident, once per correlation_id (default: the step's idempotency key)",
                CreateIncident,
                IncidentCreated,
                self.create_incident,
            ),
            OperationSpec(
                "update_incident",
                "set fields on an incident and/or add a work note",
                UpdateIncident,
                Incident,
                self.update_incident,
            ),
            OperationSpec("get_incident", "read an incident by sys_id", GetIncident, Incident, self.get_incident),
        ]

    async def create_incident(self, arguments: CreateIncident, call: CallContext) -> IncidentCreated:
        self._ready()
        correlation = arguments.correlation_id or correlation_id_for(call.idempotency_key)
        body: dict[str, Any] = {
            "short_description": arguments.short_description,
            "description": arguments.description,
            "urgency": None if arguments.urgency is None else str(arguments.urgency),
            "impact": None if arguments.impact is None else str(arguments.impact),
            "assignment_group": arguments.assignment_group,
            "caller_id": arguments.caller_id,
            "correlation_id": correlation,
            "correlation_display": "opsrail",
        }
        body = {name: value for name, value in body.items() if value is not None}
        posted = False
        failures = 0
        # Nothing can carry the key before the step's first call (the step's own correlation id only).
        look = not (call.first_call and arguments.correlation_id is None)
        while True:
            existing = await self._find(correlation) if look else None
            look = True
            if existing is not None:
                # Found after this call posted: the create went through but its answer was lost.
                return IncidentCreated(sys_id=existing.sys_id, number=existing.number, created=posted)
            posted = True
            try:
                response = await self.http_once.request(
                    "POST",
                    TABLE,
                    json=body,
                    params={"sysparm_exclude_reference_link": "true", "sysparm_fields": FIELDS},
                )
            except ConnectorError as exc:
                failures += 1
                if not exc.retryable or exc.code == "circuit_open" or failures > self.policy.retries:
                    raise
                wait = exc.retry_after
                if wait is None:
                    wait = min(self.policy.max_backoff_s, self.policy.backoff_s * 2 ** (failures - 1))
                    wait *= 0.5 + random.random() / 2
                elif wait > self.policy.max_retry_after_s:
                    raise
                await self.sleep(wait)
                continue
            created = _incident(self._result(response, "POST"))
            return IncidentCreated(sys_id=created.sys_id, number=created.number, created=True)

    async def update_incident(self, arguments: UpdateIncident, call: CallContext) -> Incident:
        self._ready()
        body = dict(arguments.fields)
        if arguments.work_notes is not None:
            body["work_notes"] = arguments.work_notes
        response = await self.http.request(
            "PATCH",
            f"{TABLE}/{arguments.sys_id}",
            json=body,
            params={"sysparm_exclude_reference_link": "true", "sysparm_fields": FIELDS},
        )
        return _incident(self._result(response, "PATCH"))

    async def get_incident(self, arguments: GetIncident, call: CallContext) -> Incident:
        self._ready()
        response = await self.http.request(
            "GET",
            f"{TABLE}/{arguments.sys_id}",
            params={"sysparm_exclude_reference_link": "true", "sysparm_fields": FIELDS},
        )
        return _incident(self._result(response, "GET"))

    async def check(self) -> dict[str, Any]:
        if self.problem is not None:
            return {"ok": False, "detail": self.problem}
        try:
            response = await self.http.request("GET", TABLE, params={"sysparm_limit": "1", "sysparm_fields": "sys_id"})
            self._result(response, "GET")
        except OperationFailed as exc:
            return {"ok": False, "detail": str(exc)}
        except Exception as exc:  # a check reports, it never raises
            return {"ok": False, "detail": f"servicenow: GET {TABLE} failed: {type(exc).__name__}: {exc}"}
        return {"ok": True, "detail": "servicenow: the incident table is readable"}

    async def _find(self, correlation: str) -> Incident | None:
        response = await self.http.request(
            "GET",
            TABLE,
            params={
                "sysparm_query": f"correlation_id={correlation}^ORDERBYsys_created_on",
                "sysparm_limit": "1",
                "sysparm_fields": FIELDS,
                "sysparm_exclude_reference_link": "true",
            },
        )
        rows = self._result(response, "GET")
        if not isinstance(rows, list):
            raise ConnectorError("servicenow: a table query answered without a result list", retryable=False)
        return _incident(rows[0]) if rows else None

    def _ready(self) -> None:
        if self.problem is not None:
            raise ConnectorError(self.problem, retryable=False, code="config")

    @staticmethod
    def _result(response: httpx.Response, method: str) -> Any:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or "result" not in body:
            raise ConnectorError(f"servicenow: {method} answered without a result", retryable=False)
        return body["result"]
