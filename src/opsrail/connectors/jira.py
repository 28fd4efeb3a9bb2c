"""The Jira Cloud connector (REST API v3): create issues once per step, move them through their workflow, comment.

Owns :class:`JiraConnector` and its operations ``jira.create_issue``, ``jira.transition``, ``jira.comment`` and
``jira.find_by_property``, the plain-text to Atlassian Document Format conversion (:func:`adf`) and the reader of
Jira's error bodies (:func:`jira_error`). Authentication is HTTP basic with the account's e-mail and an API token,
as Jira Cloud expects for scripts; the token lives only inside a ``HeaderAuth`` and is never logged, put in an
error or returned.

Idempotency. Jira has no idempotency header, so the engine's key (``CallContext.idempotency_key``) is stored on the
issue as the entity property ``opsrail`` = ``{"idempotency_key": key}`` and looked up with
``issue.property[opsrail].idempotency_key = "key"`` through the enhanced search (``POST /rest/api/3/search/jql``;
the older ``/rest/api/3/search`` has been removed from Jira Cloud). Two things must hold on a real site:

* Jira only answers JQL on entity properties that an installed app asks it to index (a Forge ``jira:entityProperty``
  module, or Connect ``jiraEntityProperties``, for property key ``opsrail``, path ``idempotency_key``, type
  ``string``). Without that index the search finds nothing and a retried step creates a second issue.
* The enhanced search is eventually consistent: an issue created a moment ago may not be found yet.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
from pydantic import Field, field_validator

from opsrail.connectors._http_client import HeaderAuth
from opsrail.connectors._sdk import (
    Connector,
    ConnectorError,
    HttpPolicy,
    HttpTransport,
    Model,
    OperationSpec,
    default_error,
    secret,
    settings_problem,
)
from opsrail.engine import CallContext, OperationFailed

log = logging.getLogger("opsrail.connectors.jira")

API = "/rest/api/3"
PROPERTY_KEY = "opsrail"
PROPERTY_FIELD = "idempotency_key"
SEARCH_PAGE = 100
SEARCH_MAX_PAGES = 20
_ISSUE_REF = r"^(?:[A-Za-z][A-Za-z0-9_]*-[0-9]+|[0-9]+)$"
_MANAGED_FIELDS = frozenset({"project", "issuetype", "summary", "description", "labels", "priority"})

T = TypeVar("T")


# -- Jira's formats -----------------------------------------------------------------------------------------------


def adf(text: str) -> dict[str, Any]:
    """Plain text as an Atlassian Document: blank lines separate paragraphs, single newlines become hard breaks."""
    content: list[dict[str, Any]] = []
    for paragraph in re.split(r"\n[ \t]*\n", text.replace("\r\n", "\n").replace("\r", "\n").strip()):
        nodes: list[dict[str, Any]] = []
        for number, line in enumerate(paragraph.split("\n")):
            if number:
                nodes.append({"type": "hardBreak"})
            if line:
                nodes.append({"type": "text", "text": line})
        if any(node["type"] == "text" for node in nodes):
            content.append({"type": "paragraph", "content": nodes})
    return {"type": "doc", "version": 1, "content": content}


def jira_error(response: httpx.Response) -> str:
    """Jira's ``{"errorMessages": [...], "errors": {field: message}}`` as one line; other bodies as they come."""
    try:
        body = response.json()
    except ValueError:
        return default_error(response)
    if not isinstance(body, dict):
        return default_error(response)
    parts: list[str] = []
    messages = body.get("errorMessages")
    if isinstance(messages, list):
        parts.extend(str(message) for message in messages if message)
    errors = body.get("errors")
    if isinstance(errors, dict):
        parts.extend(f"{name}: {message}" for name, message in errors.items())
    if not parts and isinstance(body.get("message"), str):
        parts.append(body["message"])
    return "; ".join(parts)[:500] if parts else default_error(response)


def jql_string(value: str) -> str:
    """A JQL string literal: double-quoted, with backslashes and quotes escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def property_jql(idempotency_key: str) -> str:
    return f"issue.property[{PROPERTY_KEY}].{PROPERTY_FIELD} = {jql_string(idempotency_key)}"


# -- operation inputs and outputs ---------------------------------------------------------------------------------


class CreateIssue(Model):
    project: str = Field(min_length=1, max_length=255, description="project key (ENG) or numeric id")
    issue_type: str = Field(default="Task", min_length=1, max_length=255)
    summary: str = Field(min_length=1, max_length=255)
    description: str | None = Field(default=None, description="plain text; sent as Atlassian Document Format")
    labels: list[str] = Field(default_factory=list)
    priority: str | None = Field(default=None, description="priority name, e.g. High")
    fields: dict[str, Any] = Field(default_factory=dict, description="further Jira fields, sent as given")

    @field_validator("summary")
    @classmethod
    def _one_line(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must not be blank")
        if "\n" in value or "\r" in value:
            raise ValueError("must be a single line")
        return value

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: list[str]) -> list[str]:
        for label in value:
            if not label or len(label) > 255 or any(c.isspace() for c in label):
                raise ValueError(f"{label!r}: a Jira label is 1 to 255 characters without spaces")
        return value

    @field_validator("fields")
    @classmethod
    def _extra_fields(cls, value: dict[str, Any]) -> dict[str, Any]:
        clash = sorted(_MANAGED_FIELDS & value.keys())
        if clash:
            raise ValueError(f"{', '.join(clash)}: set these with their own parameters")
        return value


class CreatedIssue(Model):
    key: str
    id: str
    url: str
    created: bool


class Transition(Model):
    issue: str = Field(pattern=_ISSUE_REF, description="issue key (ENG-1) or id")
    to: str = Field(min_length=1, description="transition name or target status, case-insensitive")


class Transitioned(Model):
    issue: str
    status: str
    changed: bool


class Comment(Model):
    issue: str = Field(pattern=_ISSUE_REF)
    body: str = Field(min_length=1, description="plain text; sent as Atlassian Document Format")

    @field_validator("body")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value


class Commented(Model):
    id: str


class FindByProperty(Model):
    key: str = Field(min_length=1, max_length=255, description="the idempotency key stored on the issue")


class Found(Model):
    issues: list[str]


# -- the connector -------------------------------------------------------------------------------------------------


class _WriteFailed(Exception):
    """A write whose outcome is unknown (timeout, 5xx, 429): look again before writing again."""

    def __init__(self, error: ConnectorError) -> None:
        super().__init__(str(error))
        self.error = error


class JiraConnector(Connector):
    """Jira Cloud through REST API v3. Config: ``base_url``, ``email``, ``api_token`` or ``api_token_file``.

    A configuration that cannot work does not stop the connector from being built: :meth:`check` reports it and
    every operation refuses it as a permanent error, before anything is sent.
    """

    name = "jira"
    summary = "Jira Cloud: create issues, transition them, comment on them"

    def __init__(
        self,
        config: Mapping[str, Any],
        client: httpx.AsyncClient,
        *,
        policy: HttpPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        base_url = str(config.get("base_url") or "").strip().rstrip("/")
        email = str(config.get("email") or "").strip()
        self.problem: str | None = None  # a configuration that cannot work: check() says so, calls refuse
        try:
            token = secret(config, "api_token", self.name) or ""
        except OperationFailed as exc:
            token, self.problem = "", str(exc)
        self.problem = self.problem or settings_problem(
            self.name,
            base_url,
            {"email": email, "api_token or api_token_file": token},
            "https://your-site.atlassian.net",
        )
        if self.problem is not None:
            base_url = "https://jira.invalid"
        self.base_url = base_url
        self.policy = policy or HttpPolicy()
        self._sleep = sleep
        self._auth = HeaderAuth.basic(email, token)
        common: dict[str, Any] = {
            "headers": {"Accept": "application/json"},
            "error_message": jira_error,
            "sleep": sleep,
        }
        self.http = HttpTransport(self.name, client, base_url, policy=self.policy, **common)
        # Writes that must not be repeated blindly go through a transport that does not retry; the operation
        # looks at Jira again before writing again. It shares the breaker and the rate limit.
        self._once = HttpTransport(
            self.name, client, base_url, policy=dataclasses.replace(self.policy, retries=0), **common
        )
        self._once.breaker = self.http.breaker
        self._once.limiter = self.http.limiter

    def operations(self) -> list[OperationSpec]:
        return [
            OperationSpec(
                "create_issue",
                "Create an issue once per step: an issue already carrying the step's idempotency key is returned",
                CreateIssue,
                CreatedIssue,
                self.create_issue,
            ),
            OperationSpec(
                "transition",
                "Move an issue through its workflow by transition or status name; a no-op when already there",
                Transition,
                Transitioned,
                self.transition,
            ),
            OperationSpec("comment", "Add a comment to an issue", Comment, Commented, self.comment),
            OperationSpec(
                "find_by_property",
                "Issues whose opsrail property carries this idempotency key",
                FindByProperty,
                Found,
                self.find_by_property,
            ),
        ]

    async def check(self) -> dict[str, Any]:
        if self.problem is not None:
            return {"ok": False, "detail": self.problem}
        try:
            me = _object(await self._once.request("GET", f"{API}/myself", auth=self._auth), "myself")
        except Exception as exc:  # a check reports, it never raises
            detail = str(exc) if isinstance(exc, ConnectorError) else f"jira: {type(exc).__name__}"
            return {"ok": False, "detail": detail}
        who = me.get("displayName") or me.get("accountId") or "an unnamed account"
        return {"ok": True, "detail": f"authenticated to {urlsplit(self.base_url).hostname} as {who}"}

    # -- operations ------------------------------------------------------------------------------------------------

    async def create_issue(self, arguments: CreateIssue, call: CallContext) -> CreatedIssue:
        """Create the issue unless one already carries ``call.idempotency_key``.

        The key goes in the create request itself (its ``properties``), so Jira stores issue and key in one write:
        there is no moment when the issue exists without its key, and no second request to fail.

        What is left open: Jira's search is eventually consistent and finds only indexed properties (see the module
        docstring), so between the create and the moment the search can see the key, a repeated call with the same
        key (an engine retry, or a create whose answer was lost) may not see the issue and create another.
        """
        key = call.idempotency_key
        fields: dict[str, Any] = {
            "project": {"id": arguments.project} if arguments.project.isdigit() else {"key": arguments.project},
            "issuetype": {"name": arguments.issue_type},
            "summary": arguments.summary,
            **arguments.fields,
        }
        if arguments.description and arguments.description.strip():
            fields["description"] = adf(arguments.description)
        if arguments.labels:
            fields["labels"] = arguments.labels
        if arguments.priority:
            fields["priority"] = {"name": arguments.priority}
        body: dict[str, Any] = {"fields": fields}
        if key:
            body["properties"] = [{"key": PROPERTY_KEY, "value": {PROPERTY_FIELD: key}}]
        posted = False
        look = not call.first_call  # before the step's first call nothing can carry its key

        async def attempt() -> CreatedIssue:
            nonlocal posted, look
            if key and look:
                existing = await self._search(key)
                if existing:
                    if len(existing) > 1:
                        log.warning(
                            "%d issues carry one idempotency key; using the oldest", len(existing), extra=_extra()
                        )
                    issue_id, issue_key = min(existing, key=_id_order)
                    # Found after this call's own create went unanswered: that create made it.
                    return CreatedIssue(key=issue_key, id=issue_id, url=self._browse(issue_key), created=posted)
            posted = look = True
            created = _object(await self._write("POST", f"{API}/issue", json=body), "create issue")
            issue_key, issue_id = str(created.get("key") or ""), str(created.get("id") or "")
            if not issue_key or not issue_id:
                raise ConnectorError("jira: the created issue came back without a key", retryable=False)
            return CreatedIssue(key=issue_key, id=issue_id, url=self._browse(issue_key), created=True)

        return await self._looking_first(attempt)

    async def transition(self, arguments: Transition, call: CallContext) -> Transitioned:
        """Apply the transition named ``to`` (or the one leading to status ``to``); nothing to do if already there."""
        wanted = arguments.to.strip().casefold()
        target: str | None = None

        async def attempt() -> Transitioned:
            nonlocal target
            issue = _object(
                await self._request("GET", f"{API}/issue/{arguments.issue}", params={"fields": "status"}), "issue"
            )
            current = str(((issue.get("fields") or {}).get("status") or {}).get("name") or "")
            if current.casefold() == wanted:
                return Transitioned(issue=arguments.issue, status=current, changed=False)
            if target is not None and current.casefold() == target.casefold():
                return Transitioned(issue=arguments.issue, status=current, changed=True)  # our earlier attempt
            page = _object(await self._request("GET", f"{API}/issue/{arguments.issue}/transitions"), "transitions")
            available = [t for t in page.get("transitions") or [] if isinstance(t, dict) and t.get("isAvailable", True)]
            chosen = next((t for t in available if str(t.get("name", "")).casefold() == wanted), None)
            if chosen is None:
                chosen = next((t for t in available if _to_name(t).casefold() == wanted), None)
            if chosen is None:
                options = ", ".join(
                    repr(str(t.get("name"))) + (f" (to {_to_name(t)})" if _to_name(t) != t.get("name") else "")
                    for t in available
                )
                raise ConnectorError(
                    f"jira: {arguments.issue} is in {current!r} and has no transition {arguments.to!r}; "
                    f"available: {options or 'none'}",
                    retryable=False,
                    code="unknown_transition",
                )
            target = _to_name(chosen) or str(chosen.get("name"))
            await self._write(
                "POST", f"{API}/issue/{arguments.issue}/transitions", json={"transition": {"id": str(chosen["id"])}}
            )
            return Transitioned(issue=arguments.issue, status=target, changed=True)

        return await self._looking_first(attempt)

    async def comment(self, arguments: Comment, call: CallContext) -> Commented:
        """Add a comment. Not deduplicated: a retry after a lost answer can post it twice."""
        response = await self._request(
            "POST", f"{API}/issue/{arguments.issue}/comment", json={"body": adf(arguments.body)}
        )
        return Commented(id=str(_object(response, "comment").get("id")))

    async def find_by_property(self, arguments: FindByProperty, call: CallContext) -> Found:
        return Found(issues=[issue_key for _, issue_key in await self._search(arguments.key)])

    # -- HTTP ------------------------------------------------------------------------------------------------------

    def _configured(self) -> None:
        if self.problem is not None:
            raise ConnectorError(self.problem, retryable=False, code="config")

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        self._configured()
        return await self.http.request(method, path, auth=self._auth, **kwargs)

    async def _write(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        self._configured()
        try:
            return await self._once.request(method, path, auth=self._auth, **kwargs)
        except ConnectorError as exc:
            if exc.retryable and exc.code != "circuit_open":
                raise _WriteFailed(exc) from exc
            raise

    async def _looking_first(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """Run ``attempt`` (look, then write); when its write failed in a way that may have taken effect, wait
        and run it again, so it looks before writing twice. Reads inside retry on their own."""
        tries = 0
        while True:
            tries += 1
            try:
                return await attempt()
            except _WriteFailed as failed:
                error = failed.error
                wait = error.retry_after
                if tries > self.policy.retries or (wait is not None and wait > self.policy.max_retry_after_s):
                    raise error from None
                if wait is None:
                    wait = min(self.policy.max_backoff_s, self.policy.backoff_s * 2 ** (tries - 1))
                    wait *= 0.5 + random.random() / 2
                log.info("looking again in %.2f s: %s", wait, error, extra=_extra())
                await self._sleep(wait)

    async def _search(self, idempotency_key: str) -> list[tuple[str, str]]:
        """``(id, key)`` of every issue whose opsrail property carries ``idempotency_key``, following the pages."""
        body: dict[str, Any] = {"jql": property_jql(idempotency_key), "fields": ["key"], "maxResults": SEARCH_PAGE}
        found: list[tuple[str, str]] = []
        for _ in range(SEARCH_MAX_PAGES):
            page = _object(await self._request("POST", f"{API}/search/jql", json=body), "search")
            for issue in page.get("issues") or []:
                if isinstance(issue, dict) and issue.get("id") is not None:
                    issue_id = str(issue["id"])
                    found.append((issue_id, str(issue.get("key") or issue_id)))
            token = page.get("nextPageToken")
            if page.get("isLast") is True or not token:
                return found
            body["nextPageToken"] = token
        log.warning("search stopped after %d pages", SEARCH_MAX_PAGES, extra=_extra())
        return found

    def _browse(self, issue_key: str) -> str:
        return f"{self.base_url}/browse/{issue_key}"


def _object(response: httpx.Response, what: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ConnectorError(f"jira: {what}: the answer was not a JSON object", retryable=False, code="bad_response")
    return body


def _to_name(transition: dict[str, Any]) -> str:
    to = transition.get("to")
    return str(to.get("name") or "") if isinstance(to, dict) else ""


def _id_order(found: tuple[str, str]) -> tuple[int, str]:
    issue_id = found[0]
    return (int(issue_id), issue_id) if issue_id.isdigit() else (2**63, issue_id)


def _extra() -> dict[str, str]:
    return {"connector": "jira"}
