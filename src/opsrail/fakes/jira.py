"""A fake Jira Cloud (REST API v3) that keeps its issues in memory.

Owns ``create_app``: the endpoints the Jira connector uses, with the paths, bodies, status codes and error bodies
(``{"errorMessages": [...], "errors": {field: message}}``) of the published API:

* ``GET /rest/api/3/myself``;
* ``POST /rest/api/3/issue`` (``fields`` and ``properties``; projects, issue types and priorities are checked, rich
  text must be an Atlassian Document) and ``GET /rest/api/3/issue/{issueIdOrKey}``;
* ``GET`` and ``POST /rest/api/3/issue/{issueIdOrKey}/transitions`` over the workflow To Do -> In Progress -> Done
  (and Done -> To Do by "Reopen");
* ``POST /rest/api/3/issue/{issueIdOrKey}/comment``;
* ``GET`` and ``PUT /rest/api/3/issue/{issueIdOrKey}/properties/{propertyKey}``;
* ``GET`` and ``POST /rest/api/3/search/jql``, the enhanced search: ``nextPageToken`` and ``isLast`` (no
  ``total``), only ``id`` unless ``fields`` are asked for, and of JQL only ``issue.property[key].path = "value"``
  (anything else is a 400). As on a real site, only properties an app had indexed are searchable:
  ``indexed_properties`` lists them. The removed ``/rest/api/3/search`` answers 410.

Every request needs HTTP basic auth with ``email``:``api_token`` (401 otherwise). Knobs to fail on purpose: the
first ``rate_limit_first`` authenticated calls get 429 with ``Retry-After``, the next ``fail_first`` get 500, every
answer can be delayed by ``delay_s``, searches return at most ``page_size`` issues a page, and
``app.state.lose_next_creates = n`` makes the next ``n`` creates take effect but answer 504, as when a gateway
loses the answer. State is on ``app.state``: ``issues`` (by key), ``requests`` (method, path and JSON body of each
authenticated call) and ``calls``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import re
from collections.abc import Awaitable, Callable, Collection, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

ACCOUNT_ID = "712020:5b10ac8d82e05b22cc7d4ef5"
STATUS_CATEGORIES = {
    "new": {"id": 2, "key": "new", "colorName": "blue-gray", "name": "To Do"},
    "indeterminate": {"id": 4, "key": "indeterminate", "colorName": "yellow", "name": "In Progress"},
    "done": {"id": 3, "key": "done", "colorName": "green", "name": "Done"},
}
STATUSES = {
    "To Do": {"id": "10000", "name": "To Do", "statusCategory": STATUS_CATEGORIES["new"]},
    "In Progress": {"id": "3", "name": "In Progress", "statusCategory": STATUS_CATEGORIES["indeterminate"]},
    "Done": {"id": "10001", "name": "Done", "statusCategory": STATUS_CATEGORIES["done"]},
}
WORKFLOW: dict[str, list[tuple[str, str, str]]] = {  # status -> (transition id, transition name, target status)
    "To Do": [("21", "In Progress", "In Progress")],
    "In Progress": [("11", "To Do", "To Do"), ("31", "Done", "Done")],
    "Done": [("41", "Reopen", "To Do")],
}
ISSUE_TYPES = {"Task": "10001", "Bug": "10002", "Story": "10003", "Epic": "10004"}
PRIORITIES = {"Highest": "1", "High": "2", "Medium": "3", "Low": "4", "Lowest": "5"}
SETTABLE = frozenset({"assignee", "components", "duedate", "environment", "parent", "reporter"})
ADF_MESSAGE = "Operation value must be an Atlassian Document (see the Atlassian Document Format)"
NOT_FOUND = "Issue does not exist or you do not have permission to see it."

_PROPERTY_JQL = re.compile(
    r'^\s*issue\.property\[\s*([A-Za-z0-9_.-]+)\s*\]\.([A-Za-z0-9_.]+)\s*=\s*"((?:[^"\\]|\\.)*)"\s*$', re.IGNORECASE
)


def _error(
    status: int,
    messages: Iterable[str] = (),
    errors: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse({"errorMessages": list(messages), "errors": errors or {}}, status_code=status, headers=headers)


def _jira_time(moment: datetime | None = None) -> str:
    return (moment or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"


def _is_adf(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and value.get("type") == "doc"
        and value.get("version") == 1
        and isinstance(value.get("content"), list)
    )


def _ref(value: Any) -> dict[str, str]:
    """A reference such as ``{"key": "ENG"}`` or ``{"id": "10001"}`` with string values; ``{}`` if not an object."""
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def _pick(table: dict[str, str], ref: dict[str, str]) -> str | None:
    """The name in ``table`` (name -> id) that ``ref`` points at by name (any case) or id."""
    name = ref.get("name", "").casefold()
    return next((n for n, i in table.items() if (name and n.casefold() == name) or i == ref.get("id")), None)


def _token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def _offset(token: str) -> int | None:
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    prefix, _, number = text.partition(":")
    return int(number) if prefix == "offset" and number.isdigit() else None


def create_app(
    *,
    email: str = "bot@example.test",
    api_token: str = "test-token",  # noqa: S107 - the fake's own test credential
    rate_limit_first: int = 0,
    fail_first: int = 0,
    delay_s: float = 0.0,
    retry_after_s: float = 1.0,
    projects: Collection[str] = ("OPS", "ENG"),
    page_size: int = 50,
    indexed_properties: Collection[str] = ("opsrail.idempotency_key",),
) -> FastAPI:
    """The fake server; ``indexed_properties`` are ``"<property key>.<path>"`` entries the search can see."""
    app = FastAPI(title="Fake Jira Cloud", docs_url=None, redoc_url=None, openapi_url=None)
    known_projects = {key: {"id": str(10000 + n), "key": key, "name": key.title()} for n, key in enumerate(projects)}
    expected = f"{email}:{api_token}".encode()
    app.state.issues = {}
    app.state.requests = []
    app.state.calls = 0
    app.state.lose_next_creates = 0
    counters = {"issue": 10000, "comment": 10000}
    numbers = dict.fromkeys(known_projects, 0)

    def authorised(request: Request) -> bool:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            given = base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        return hmac.compare_digest(given, expected)

    async def gate(request: Request) -> Response | None:
        """What a call is answered instead of reaching its route (no credentials, a rate limit, a failure), if any."""
        if not authorised(request):
            return _error(401, ["Client must be authenticated to access this resource."])
        app.state.calls += 1
        number = app.state.calls
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        if number <= rate_limit_first:
            reset = datetime.now(UTC) + timedelta(seconds=retry_after_s)
            return _error(
                429,
                ["Rate limit exceeded."],
                headers={
                    "Retry-After": f"{retry_after_s:g}",
                    "X-RateLimit-Reset": reset.strftime("%Y-%m-%dT%H:%MZ"),
                    "RateLimit-Reason": "jira-burst-based",
                },
            )
        if number <= rate_limit_first + fail_first:
            return _error(500, ["Internal server error"])
        return None

    # A plain ASGI wrapper: Starlette's ``@app.middleware("http")`` runs each call through extra tasks and streams.
    app.add_middleware(Gate, check=gate)

    async def read_json(request: Request) -> tuple[Any, JSONResponse | None]:
        raw = await request.body()
        try:
            body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = None
            problem: JSONResponse | None = _error(400, ["Unexpected character in the request body: invalid JSON."])
        else:
            problem = None
        app.state.requests.append({"method": request.method, "path": request.url.path, "json": body})
        return body, problem

    def issue_url(request: Request, issue: dict[str, Any]) -> str:
        return f"{str(request.base_url).rstrip('/')}/rest/api/3/issue/{issue['id']}"

    def find(ref: str) -> dict[str, Any] | None:
        issues: dict[str, dict[str, Any]] = app.state.issues
        found = issues.get(ref.upper())
        if found is None and ref.isdigit():
            found = next((issue for issue in issues.values() if issue["id"] == ref), None)
        return found

    def render(request: Request, issue: dict[str, Any], wanted: list[str] | None) -> dict[str, Any]:
        if wanted is None or "*all" in wanted or "*navigable" in wanted:
            fields = dict(issue["fields"])
        else:
            fields = {name: issue["fields"][name] for name in wanted if name in issue["fields"]}
        return {
            "expand": "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations",
            "id": issue["id"],
            "self": issue_url(request, issue),
            "key": issue["key"],
            "fields": fields,
        }

    # -- identity --------------------------------------------------------------------------------------------------

    @app.get("/rest/api/3/myself")
    async def myself(request: Request) -> Any:
        await read_json(request)
        return {
            "self": f"{str(request.base_url).rstrip('/')}/rest/api/3/user?accountId={ACCOUNT_ID}",
            "accountId": ACCOUNT_ID,
            "accountType": "atlassian",
            "emailAddress": email,
            "displayName": "Opsrail Bot",
            "active": True,
            "timeZone": "Etc/UTC",
            "locale": "en_US",
        }

    # -- issues ----------------------------------------------------------------------------------------------------

    @app.post("/rest/api/3/issue")
    async def create_issue(request: Request) -> Any:
        body, problem = await read_json(request)
        if problem is not None:
            return problem
        fields = body.get("fields") if isinstance(body, dict) else None
        if not isinstance(fields, dict):
            return _error(400, ["Issue must be created with at least one field."])
        errors: dict[str, str] = {}
        project_ref = _ref(fields.get("project"))
        project = known_projects.get(project_ref.get("key", "").upper()) or next(
            (p for p in known_projects.values() if p["id"] == project_ref.get("id")), None
        )
        if project is None:
            errors["project"] = "valid project is required"
        type_name = _pick(ISSUE_TYPES, _ref(fields.get("issuetype")))
        if type_name is None:
            errors["issuetype"] = "Specify a valid issue type"
        summary = fields.get("summary")
        if not isinstance(summary, str) or not summary.strip():
            errors["summary"] = "You must specify a summary of the issue."
        elif len(summary) > 255:
            errors["summary"] = "Summary must be less than 255 characters."
        if "description" in fields and fields["description"] is not None and not _is_adf(fields["description"]):
            errors["description"] = ADF_MESSAGE
        labels = fields.get("labels", [])
        if not isinstance(labels, list) or any(not isinstance(x, str) or " " in x for x in labels):
            errors["labels"] = "Labels must be a list of strings without spaces."
        priority = None
        if fields.get("priority") is not None:
            priority = _pick(PRIORITIES, _ref(fields["priority"]))
            if priority is None:
                errors["priority"] = "Specify a valid 'id' or 'name' for Priority"
        for name in fields:
            if name not in {"project", "issuetype", "summary", "description", "labels", "priority"} | SETTABLE and not (
                name.startswith("customfield_") and name[12:].isdigit()
            ):
                errors[name] = f"Field '{name}' cannot be set. It is not on the appropriate screen, or unknown."
        properties: dict[str, Any] = {}
        for entry in body.get("properties") or []:
            if not isinstance(entry, dict) or not isinstance(entry.get("key"), str) or "value" not in entry:
                return _error(400, ["Entity property must have a key and a value."])
            properties[entry["key"]] = entry["value"]
        if errors:
            return _error(400, errors=errors)
        assert project is not None and type_name is not None
        counters["issue"] += 1
        numbers[project["key"]] += 1
        now = _jira_time()
        issue = {
            "id": str(counters["issue"]),
            "key": f"{project['key']}-{numbers[project['key']]}",
            "fields": {
                **{name: value for name, value in fields.items() if name not in {"project", "issuetype", "priority"}},
                "summary": summary,
                "labels": labels,
                "project": project,
                "issuetype": {"id": ISSUE_TYPES[type_name], "name": type_name, "subtask": False},
                "priority": {"id": PRIORITIES[priority or "Medium"], "name": priority or "Medium"},
                "status": STATUSES["To Do"],
                "created": now,
                "updated": now,
            },
            "properties": properties,
            "comments": [],
        }
        app.state.issues[issue["key"]] = issue
        if app.state.lose_next_creates > 0:
            app.state.lose_next_creates -= 1
            return _error(504, ["Gateway Timeout"])
        return JSONResponse({"id": issue["id"], "key": issue["key"], "self": issue_url(request, issue)}, 201)

    @app.get("/rest/api/3/issue/{ref}")
    async def get_issue(request: Request, ref: str, fields: str | None = None) -> Any:
        await read_json(request)
        issue = find(ref)
        if issue is None:
            return _error(404, [NOT_FOUND])
        return render(request, issue, fields.split(",") if fields else None)

    # -- workflow --------------------------------------------------------------------------------------------------

    @app.get("/rest/api/3/issue/{ref}/transitions")
    async def transitions(request: Request, ref: str) -> Any:
        await read_json(request)
        issue = find(ref)
        if issue is None:
            return _error(404, [NOT_FOUND])
        return {
            "expand": "transitions",
            "transitions": [
                {
                    "id": transition_id,
                    "name": name,
                    "to": {
                        "self": f"{str(request.base_url).rstrip('/')}/rest/api/3/status/{STATUSES[target]['id']}",
                        **STATUSES[target],
                    },
                    "hasScreen": False,
                    "isGlobal": False,
                    "isInitial": False,
                    "isAvailable": True,
                    "isConditional": False,
                    "isLooped": False,
                }
                for transition_id, name, target in WORKFLOW[issue["fields"]["status"]["name"]]
            ],
        }

    @app.post("/rest/api/3/issue/{ref}/transitions")
    async def do_transition(request: Request, ref: str) -> Any:
        body, problem = await read_json(request)
        if problem is not None:
            return problem
        issue = find(ref)
        if issue is None:
            return _error(404, [NOT_FOUND])
        wanted = body.get("transition") if isinstance(body, dict) else None
        if not isinstance(wanted, dict) or not wanted.get("id"):
            return _error(400, ["Missing 'transition' identifier"])
        transition_id = str(wanted["id"])
        for candidate, _, target in WORKFLOW[issue["fields"]["status"]["name"]]:
            if candidate == transition_id:
                issue["fields"]["status"] = STATUSES[target]
                issue["fields"]["updated"] = _jira_time()
                return Response(status_code=204)
        return _error(400, [f"Transition id '{transition_id}' is not valid for this issue."])

    # -- comments --------------------------------------------------------------------------------------------------

    @app.post("/rest/api/3/issue/{ref}/comment")
    async def add_comment(request: Request, ref: str) -> Any:
        body, problem = await read_json(request)
        if problem is not None:
            return problem
        issue = find(ref)
        if issue is None:
            return _error(404, [NOT_FOUND])
        text = body.get("body") if isinstance(body, dict) else None
        if text is None or text == "":
            return _error(400, errors={"comment": "Comment body can not be empty!"})
        if not _is_adf(text):
            return _error(400, errors={"comment": ADF_MESSAGE})
        counters["comment"] += 1
        author = {"accountId": ACCOUNT_ID, "displayName": "Opsrail Bot", "active": True}
        now = _jira_time()
        comment = {
            "self": f"{issue_url(request, issue)}/comment/{counters['comment']}",
            "id": str(counters["comment"]),
            "author": author,
            "body": text,
            "updateAuthor": author,
            "created": now,
            "updated": now,
            "jsdPublic": True,
        }
        issue["comments"].append(comment)
        return JSONResponse(comment, 201)

    # -- entity properties -----------------------------------------------------------------------------------------

    @app.get("/rest/api/3/issue/{ref}/properties/{property_key}")
    async def get_property(request: Request, ref: str, property_key: str) -> Any:
        await read_json(request)
        issue = find(ref)
        if issue is None:
            return _error(404, [NOT_FOUND])
        if property_key not in issue["properties"]:
            return _error(404, [f"The property with key '{property_key}' does not exist."])
        return {"key": property_key, "value": issue["properties"][property_key]}

    @app.put("/rest/api/3/issue/{ref}/properties/{property_key}")
    async def set_property(request: Request, ref: str, property_key: str) -> Any:
        body, problem = await read_json(request)
        if problem is not None:
            return problem
        issue = find(ref)
        if issue is None:
            return _error(404, [NOT_FOUND])
        if len(property_key) > 255:
            return _error(400, ["The property key cannot be longer than 255 characters."])
        if body is None or body == {}:
            return _error(400, ["The property value must be a valid, non-empty JSON."])
        if len(orjson.dumps(body)) > 32768:
            return _error(400, ["The property value cannot be longer than 32768 characters."])
        new = property_key not in issue["properties"]
        issue["properties"][property_key] = body
        return Response(status_code=201 if new else 200)

    # -- search ----------------------------------------------------------------------------------------------------

    def search(request: Request, query: dict[str, Any]) -> Any:
        jql = query.get("jql")
        if not isinstance(jql, str) or not jql.strip():
            return _error(
                400, ["Unbounded JQL queries are not allowed here. Please add a search restriction to your query."]
            )
        match = _PROPERTY_JQL.match(jql)
        if match is None:
            return _error(
                400,
                [f'Error in the JQL Query: this fake understands only issue.property[key].path = "value" ({jql!r}).'],
            )
        property_key, path, raw = match.groups()
        value = re.sub(r"\\(.)", r"\1", raw)
        hits: list[dict[str, Any]] = []
        if f"{property_key}.{path}" in indexed_properties:
            for issue in app.state.issues.values():
                node: Any = issue["properties"].get(property_key)
                for step in path.split("."):
                    node = node.get(step) if isinstance(node, dict) else None
                if node is not None and str(node) == value:
                    hits.append(issue)
        hits.sort(key=lambda issue: int(issue["id"]))
        try:
            size = max(1, min(int(query.get("maxResults") or 50), page_size, 5000))
        except (TypeError, ValueError):
            return _error(400, ["maxResults must be a number."])
        start = 0
        if query.get("nextPageToken"):
            offset = _offset(str(query["nextPageToken"]))
            if offset is None:
                return _error(400, ["The provided next page token is invalid or expired."])
            start = offset
        wanted = query.get("fields")
        if isinstance(wanted, str):
            wanted = [name.strip() for name in wanted.split(",") if name.strip()]
        page = hits[start : start + size]
        if not wanted or wanted == ["id"]:
            issues: list[dict[str, Any]] = [{"id": issue["id"]} for issue in page]
        else:
            issues = [render(request, issue, [name for name in wanted if name != "key"]) for issue in page]
        result: dict[str, Any] = {"issues": issues, "isLast": start + size >= len(hits)}
        if not result["isLast"]:
            result["nextPageToken"] = _token(start + size)
        return result

    @app.post("/rest/api/3/search/jql")
    async def search_post(request: Request) -> Any:
        body, problem = await read_json(request)
        if problem is not None:
            return problem
        if not isinstance(body, dict):
            return _error(400, ["Invalid request payload. Refer to the REST API documentation and try again."])
        return search(request, body)

    @app.get("/rest/api/3/search/jql")
    async def search_get(request: Request) -> Any:
        await read_json(request)
        return search(request, dict(request.query_params))

    @app.api_route("/rest/api/3/search", methods=["GET", "POST"])
    async def search_removed(request: Request) -> Any:
        await read_json(request)
        return _error(
            410,
            [
                "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. "
                "A full migration guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046"
            ],
        )

    return app


class Gate:
    """Answers a call with ``check``'s response when it gives one; otherwise passes the call on."""

    def __init__(self, app: ASGIApp, check: Callable[[Request], Awaitable[Response | None]]) -> None:
        self.app = app
        self.check = check

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            answer = await self.check(Request(scope))
            if answer is not None:
                await answer(scope, receive, send)
                return
        await self.app(scope, receive, send)
