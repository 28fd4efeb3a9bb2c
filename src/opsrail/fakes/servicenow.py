"""A fake ServiceNow instance serving the Table API for the ``incident`` table.

Owns ``create_app``. Incidents live in memory on ``app.state.incidents`` (a dict by sys_id of raw field values, all
strings, as ServiceNow stores them); ``app.state.journal`` lists work notes and comments; ``app.state.requests``
lists every authenticated call (method, path, query, JSON body).

Endpoints, as in ServiceNow's published Table API:

- ``GET /api/now/table/incident``: ``{"result": [...]}`` with ``sysparm_query`` (an encoded query: conditions
  ``field=value`` and ``field!=value`` joined by ``^``, plus ``ORDERBY<field>`` and ``ORDERBYDESC<field>``; a
  condition on a field the table does not have is ignored, as an instance does by default), ``sysparm_limit``
  (default 10000) and ``sysparm_offset`` pagination with ``X-Total-Count`` and a ``Link`` header (``first``,
  ``prev``, ``next``, ``last``), ``sysparm_fields`` and ``sysparm_exclude_reference_link``. Other query syntax
  (``LIKE``, ``^OR``, ``^NQ``, ...) is answered 400 by the fake rather than misread.
- ``POST /api/now/table/incident``: 201 with the record and a ``Location`` header; ``sys_id`` is 32 hex digits,
  ``number`` runs INC0010001, INC0010002, ...; ``priority`` follows urgency and impact as in a base instance; fields the
  table does not have are ignored, as are writes to ``sys_*``, ``number`` and ``priority``.
- ``GET``, ``PATCH``/``PUT`` and ``DELETE /api/now/table/incident/{sys_id}``; ``work_notes`` and ``comments``
  append to the journal and read back empty.
- Reference fields (``assignment_group``, ``assigned_to``, ``caller_id``, ``opened_by``) read back as
  ``{"link", "value"}`` unless ``sysparm_exclude_reference_link=true``.
- Errors are ``{"error": {"message", "detail"}, "status": "failure"}``: 401 without valid basic auth, 404
  ``No Record found``, 400 for an unknown table, a body that is not a JSON object or a negative offset.

Knobs to fail on purpose: the first ``rate_limit_first`` authenticated calls get 429 with ``Retry-After:
retry_after_s`` and the ``X-RateLimit-*`` headers of an inbound rate-limit rule, the next ``fail_first`` get 500;
every call waits ``delay_s`` first. Aimed at creates: setting ``app.state.rate_limit_creates`` to n answers the next n
creates 429 (with ``Retry-After``) before they insert; ``app.state.fail_after_create`` set to n makes the next n
creates insert the incident and then answer 500, as when an answer is lost.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import operator
import re
import secrets
import time
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

ADMIN_SYS_ID = "6816f79cc0a8016401c5a33be04be441"  # the admin user's sys_id in a base instance
DEFAULT_LIMIT = 10000
FIELDS = (
    "sys_id",
    "number",
    "short_description",
    "description",
    "state",
    "active",
    "urgency",
    "impact",
    "priority",
    "category",
    "assignment_group",
    "assigned_to",
    "caller_id",
    "opened_by",
    "opened_at",
    "resolved_at",
    "closed_at",
    "close_code",
    "close_notes",
    "correlation_id",
    "correlation_display",
    "work_notes",
    "comments",
    "sys_created_on",
    "sys_created_by",
    "sys_updated_on",
    "sys_updated_by",
    "sys_mod_count",
)
REFERENCES = {
    "assignment_group": "sys_user_group",
    "assigned_to": "sys_user",
    "caller_id": "sys_user",
    "opened_by": "sys_user",
}
JOURNAL = ("work_notes", "comments")
COMPUTED = {"sys_id", "number", "priority", "active", "opened_at", "opened_by", "resolved_at", "closed_at"}
# A base instance's priority lookup: (urgency, impact) -> priority.
PRIORITY = {
    ("1", "1"): "1",
    ("1", "2"): "2",
    ("2", "1"): "2",
    ("1", "3"): "3",
    ("2", "2"): "3",
    ("3", "1"): "3",
    ("2", "3"): "4",
    ("3", "2"): "4",
    ("3", "3"): "5",
}
_CONDITION = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(!=|=)(.*)$", re.DOTALL)


class TableError(Exception):
    def __init__(self, status: int, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": {"message": message, "detail": detail}, "status": "failure"}

    def response(self, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse(self.body, status_code=self.status, headers=headers)


def _not_found() -> TableError:
    return TableError(404, "No Record found", "Record doesn't exist or ACL restricts the record retrieval")


def parse_query(query: str) -> tuple[list[tuple[str, str, str]], list[tuple[str, bool]]]:
    """An encoded query as conditions ``(field, operator, value)`` and orderings ``(field, descending)``."""
    conditions: list[tuple[str, str, str]] = []
    ordering: list[tuple[str, bool]] = []
    for part in query.split("^"):
        if not part or part == "EQ":
            continue
        if part.startswith("ORDERBYDESC"):
            ordering.append((part.removeprefix("ORDERBYDESC"), True))
        elif part.startswith("ORDERBY"):
            ordering.append((part.removeprefix("ORDERBY"), False))
        else:
            match = None if part.startswith(("OR", "NQ")) else _CONDITION.match(part)  # fields are lower case
            if match is None:
                raise TableError(
                    400, "Unsupported query", f"the fake supports field=value, field!=value and ORDERBY: {part}"
                )
            field, comparison, value = match.groups()
            conditions.append((field, comparison, value))
    return conditions, ordering


def instance_url(request: Request) -> str:
    """The instance's URL as the caller sees it, also when the fake is mounted under a prefix."""
    path = request.url.path
    prefix = path[: path.find("/api/now/")] if "/api/now/" in path else ""
    return f"{request.url.scheme}://{request.url.netloc}{prefix}"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _raw(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict) and "value" in value:
        return _raw(value["value"])
    return str(value)


def create_app(
    *,
    username: str = "admin",
    password: str = "secret",  # noqa: S107 - a fake's test credential
    rate_limit_first: int = 0,
    fail_first: int = 0,
    delay_s: float = 0.0,
    retry_after_s: float = 1.0,
) -> FastAPI:
    """The fake instance; it accepts ``username`` with ``password`` over basic auth."""
    app = FastAPI(title="Fake ServiceNow Table API", docs_url=None, redoc_url=None, openapi_url=None)
    state = app.state
    state.incidents = {}
    state.journal = []
    state.requests = []
    state.fail_after_create = 0
    state.rate_limit_creates = 0
    counters = {"calls": 0, "number": 10000, "created": 0}

    def authorised(request: Request) -> Response | None:
        scheme, _, credential = request.headers.get("authorization", "").partition(" ")
        given = ("", "")
        if scheme.lower() == "basic":
            try:
                user, _, secret = base64.b64decode(credential, validate=True).decode("utf-8").partition(":")
                given = (user, secret)
            except (binascii.Error, UnicodeDecodeError):
                pass
        if given != (username, password):
            error = TableError(401, "User Not Authenticated", "Required to provide Auth information")
            return error.response({"WWW-Authenticate": 'BASIC realm="Service-now"'})
        return None

    def rate_limited() -> Response:
        error = TableError(
            429,
            "Rate limit exceeded",
            f"The inbound REST API rate limit for this user has been exceeded; retry after {retry_after_s:g} s",
        )
        return error.response(
            {
                "Retry-After": f"{retry_after_s:g}",
                "X-RateLimit-Limit": str(max(1, rate_limit_first)),
                "X-RateLimit-Reset": str(int(time.time() + retry_after_s)),
                "X-RateLimit-Rule": "fakefakefakefakefakefakefakefake",
            }
        )

    async def gate(request: Request, body: Any = None) -> Response | None:
        denied = authorised(request)
        if denied is not None:
            return denied
        state.requests.append(
            {"method": request.method, "path": request.url.path, "query": dict(request.query_params), "body": body}
        )
        counters["calls"] += 1
        number = counters["calls"]
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        if number <= rate_limit_first:
            return rate_limited()
        if number <= rate_limit_first + fail_first:
            return TableError(500, "Internal Server Error", "The fake failed on purpose").response()
        return None

    async def json_body(request: Request) -> dict[str, Any] | None:
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return None
        return body if isinstance(body, dict) else None

    def unreadable() -> TableError:
        return TableError(400, "Exception while reading request", "The payload is not a valid JSON object")

    def table(name: str) -> None:
        if name != "incident":
            raise TableError(400, f"Invalid table {name}", None)

    def render(record: dict[str, str], request: Request) -> dict[str, Any]:
        wanted = [name for name in request.query_params.get("sysparm_fields", "").split(",") if name]
        plain = request.query_params.get("sysparm_exclude_reference_link", "false").lower() == "true"
        base = instance_url(request)
        shown: dict[str, Any] = {}
        for name in wanted or FIELDS:
            if name not in record:
                continue
            value = "" if name in JOURNAL else record[name]
            if name in REFERENCES and value and not plain:
                shown[name] = {"link": f"{base}/api/now/table/{REFERENCES[name]}/{value}", "value": value}
            else:
                shown[name] = value
        return shown

    def write(record: dict[str, str], body: dict[str, Any]) -> None:
        for name, value in body.items():
            if name in JOURNAL:
                if value not in (None, ""):
                    state.journal.append(
                        {
                            "element_id": record["sys_id"],
                            "element": name,
                            "value": _raw(value),
                            "sys_created_by": username,
                            "sys_created_on": _now(),
                        }
                    )
            elif name in FIELDS and name not in COMPUTED and not name.startswith("sys_"):
                record[name] = _raw(value)
        record["priority"] = PRIORITY.get((record["urgency"], record["impact"]), "5")
        if record["state"] == "6" and not record["resolved_at"]:
            record["resolved_at"] = _now()
        if record["state"] == "7" and not record["closed_at"]:
            record["closed_at"] = _now()
        record["active"] = "false" if record["state"] in ("7", "8") else "true"

    def record_for(sys_id: str) -> dict[str, str]:
        record: dict[str, str] | None = state.incidents.get(sys_id)
        if record is None:
            raise _not_found()
        return record

    def link_header(request: Request, offset: int, limit: int, total: int) -> str:
        def url(at: int) -> str:
            return str(request.url.include_query_params(sysparm_offset=at, sysparm_limit=limit))

        last = max(0, (total - 1) // limit * limit) if total else 0
        links = [f'<{url(0)}>;rel="first"']
        if offset > 0:
            links.append(f'<{url(max(0, offset - limit))}>;rel="prev"')
        if offset + limit < total:
            links.append(f'<{url(offset + limit)}>;rel="next"')
        links.append(f'<{url(last)}>;rel="last"')
        return ",".join(links)

    @app.get("/api/now/table/{name}")
    async def list_records(name: str, request: Request) -> Response:
        denied = await gate(request)
        if denied is not None:
            return denied
        try:
            table(name)
            conditions, ordering = parse_query(request.query_params.get("sysparm_query", ""))
            limit_text = request.query_params.get("sysparm_limit", "")
            offset_text = request.query_params.get("sysparm_offset", "0")
            limit = int(limit_text) if limit_text.isdigit() and int(limit_text) > 0 else DEFAULT_LIMIT
            offset = int(offset_text) if offset_text.lstrip("-").isdigit() else 0
            if offset < 0:
                raise TableError(400, f"offset is {offset}", "Negative offset is not supported")
        except TableError as exc:
            return exc.response()
        rows = [
            record
            for record in state.incidents.values()
            if all(
                (record[field] == value) == (comparison == "=")
                for field, comparison, value in conditions
                if field in FIELDS  # an instance ignores conditions on unknown fields by default
            )
        ]
        for field, descending in reversed(ordering):
            if field in FIELDS:
                rows.sort(key=operator.itemgetter(field), reverse=descending)
        page = rows[offset : offset + limit]
        headers = {"X-Total-Count": str(len(rows)), "Link": link_header(request, offset, limit, len(rows))}
        return JSONResponse({"result": [render(record, request) for record in page]}, headers=headers)

    @app.post("/api/now/table/{name}")
    async def create_record(name: str, request: Request) -> Response:
        body = await json_body(request)
        denied = await gate(request, body)
        if denied is not None:
            return denied
        try:
            table(name)
            if body is None:
                raise unreadable()
        except TableError as exc:
            return exc.response()
        if state.rate_limit_creates > 0:
            state.rate_limit_creates -= 1
            return rate_limited()
        counters["number"] += 1
        counters["created"] += 1
        now = _now()
        sys_id = secrets.token_hex(16)
        record = dict.fromkeys(FIELDS, "")
        record.update(
            {
                "sys_id": sys_id,
                "number": f"INC{counters['number']:07d}",
                "state": "1",
                "urgency": "3",
                "impact": "3",
                "category": "inquiry",
                "opened_by": ADMIN_SYS_ID,
                "opened_at": now,
                "sys_created_on": now,
                "sys_created_by": username,
                "sys_updated_on": now,
                "sys_updated_by": username,
                "sys_mod_count": "0",
            }
        )
        write(record, body)
        state.incidents[sys_id] = record
        if state.fail_after_create > 0:
            state.fail_after_create -= 1
            return TableError(500, "Internal Server Error", "The answer was lost after the insert").response()
        location = f"{instance_url(request)}/api/now/table/incident/{sys_id}"
        return JSONResponse({"result": render(record, request)}, status_code=201, headers={"Location": location})

    @app.get("/api/now/table/{name}/{sys_id}")
    async def get_record(name: str, sys_id: str, request: Request) -> Response:
        denied = await gate(request)
        if denied is not None:
            return denied
        try:
            table(name)
            return JSONResponse({"result": render(record_for(sys_id), request)})
        except TableError as exc:
            return exc.response()

    @app.api_route("/api/now/table/{name}/{sys_id}", methods=["PATCH", "PUT"])
    async def update_record(name: str, sys_id: str, request: Request) -> Response:
        body = await json_body(request)
        denied = await gate(request, body)
        if denied is not None:
            return denied
        try:
            table(name)
            if body is None:
                raise unreadable()
            record = record_for(sys_id)
        except TableError as exc:
            return exc.response()
        write(record, body)
        record["sys_updated_on"] = _now()
        record["sys_updated_by"] = username
        record["sys_mod_count"] = str(int(record["sys_mod_count"]) + 1)
        return JSONResponse({"result": render(record, request)})

    @app.delete("/api/now/table/{name}/{sys_id}")
    async def delete_record(name: str, sys_id: str, request: Request) -> Response:
        denied = await gate(request)
        if denied is not None:
            return denied
        try:
            table(name)
            record_for(sys_id)
        except TableError as exc:
            return exc.response()
        del state.incidents[sys_id]
        return Response(status_code=204)

    return app
