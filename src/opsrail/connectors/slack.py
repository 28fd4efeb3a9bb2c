"""Slack over the Web API: post messages, and ask a person to approve or reject a task with two buttons.

Slack answers most errors with HTTP 200 and ``{"ok": false, "error": "<code>"}``; :class:`SlackConnector` turns
those into :class:`ConnectorError` (retryable for ``ratelimited``, ``internal_error``, ``fatal_error`` and the like,
permanent for ``channel_not_found``, ``not_in_channel``, ``invalid_auth`` and every other code). HTTP 429 with
``Retry-After`` is retried by the transport.

Slack has no idempotency key for ``chat.postMessage``, so every message carries the engine's key as message
metadata (``event_type`` ``opsrail_step``, ``event_payload`` ``{"idempotency_key": …}``) and, before each post, the
connector looks for a recent message with that key (``conversations.history`` with ``include_all_metadata``, or
``conversations.replies`` for a thread reply). An answer lost after Slack posted (a timeout, a 5xx) is therefore
not posted twice: posts are never retried blindly by the transport, only by this connector after looking again.
The bot needs ``chat:write`` and the history scope of the conversation type (``channels:history``,
``groups:history``, ``im:history`` or ``mpim:history``).

:func:`verify_interaction` checks Slack's request signature on a button click (``block_actions``) sent to the
interactivity URL and reads which task was approved or rejected, by whom.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import json
import logging
import random
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import Field

from opsrail.connectors._sdk import (
    Connector,
    ConnectorError,
    HttpPolicy,
    HttpTransport,
    Model,
    OperationSpec,
    default_error,
    retry_after_seconds,
    secret,
)
from opsrail.engine import CallContext
from opsrail.model import InvalidInput

log = logging.getLogger("opsrail.connectors.slack")

SLACK_API = "https://slack.com/api"
APPROVE_ACTION = "opsrail_approve"
REJECT_ACTION = "opsrail_reject"
METADATA_EVENT = "opsrail_step"
HISTORY_LIMIT = 50
MAX_REPLY_PAGES = 10
MAX_CLOCK_SKEW_S = 300.0  # Slack's advice: refuse a request timestamp more than five minutes from now

# Error codes Slack documents as transient; every other code is a refusal that trying again will not change.
RETRYABLE_ERRORS = frozenset(
    {"ratelimited", "rate_limited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
# After these nothing was posted, so the next try need not look for the message first.
_NOT_POSTED = frozenset({"ratelimited", "rate_limited", "http_429", "circuit_open"})

# Conversation IDs: public (C), private (G, older private channels) and direct (D) conversations. Names ("#ops")
# are refused: conversations.history, which the duplicate check needs, only takes IDs.
CHANNEL_ID = r"^[CGD][A-Z0-9]{2,}$"
MESSAGE_TS = r"^\d{1,12}\.\d{1,9}$"

_HEADER_MAX = 150  # characters of a header block's plain_text
_SECTION_MAX = 3000  # characters of a section block's text


class PostMessage(Model):
    channel: str = Field(pattern=CHANNEL_ID, description="conversation ID, e.g. C0123ABCD")
    text: str = Field(min_length=1, max_length=40_000, description="the message, or its fallback when blocks are given")
    blocks: list[dict[str, Any]] | None = Field(default=None, max_length=50, description="Block Kit blocks")
    thread_ts: str | None = Field(default=None, pattern=MESSAGE_TS, description="reply in this message's thread")


class Posted(Model):
    channel: str
    ts: str


class RequestApproval(Model):
    channel: str = Field(pattern=CHANNEL_ID, description="conversation ID, e.g. C0123ABCD")
    task_id: str = Field(min_length=1, max_length=2000, description="carried by both buttons (2,000 characters max)")
    title: str = Field(min_length=1, max_length=2000, description="shown as the header (cut at 150 characters)")
    text: str = Field(min_length=1, max_length=40_000, description="what is to be decided (cut at 3,000 characters)")
    recommendation: str | None = Field(default=None, max_length=500)
    confidence: float | None = Field(default=None, ge=0.0, le=1.0)


def escape(text: str) -> str:
    """Slack's three control characters escaped, so text from a ticket cannot ping ``<!channel>`` or forge links."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def approval_blocks(
    task_id: str, title: str, text: str, recommendation: str | None = None, confidence: float | None = None
) -> list[dict[str, Any]]:
    """The Block Kit of an approval request: header, text, the recommendation if any, Approve and Reject buttons."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(title, _HEADER_MAX), "emoji": False}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _cut(escape(text), _SECTION_MAX)}},
    ]
    facts = []
    if recommendation:
        facts.append(f"Recommendation: *{escape(recommendation)}*")
    if confidence is not None:
        facts.append(f"Confidence: {confidence:.0%}")
    if facts:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(facts)}]})
    blocks.append(
        {
            "type": "actions",
            "block_id": "opsrail_approval",
            "elements": [
                {
                    "type": "button",
                    "action_id": APPROVE_ACTION,
                    "text": {"type": "plain_text", "text": "Approve"},
                    "style": "primary",
                    "value": task_id,
                },
                {
                    "type": "button",
                    "action_id": REJECT_ACTION,
                    "text": {"type": "plain_text", "text": "Reject"},
                    "style": "danger",
                    "value": task_id,
                },
            ],
        }
    )
    return blocks


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return default_error(response)
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return str(body["error"])
    return default_error(response)


def _find_key(messages: Any, key: str) -> str | None:
    """The ``ts`` of the message whose Opsrail metadata carries ``key``, if one is among ``messages``."""
    if not isinstance(messages, list):
        return None
    for message in messages:
        if not isinstance(message, dict):
            continue
        metadata = message.get("metadata")
        if not isinstance(metadata, dict) or metadata.get("event_type") != METADATA_EVENT:
            continue
        payload = metadata.get("event_payload")
        if isinstance(payload, dict) and payload.get("idempotency_key") == key and isinstance(message.get("ts"), str):
            return str(message["ts"])
    return None


class SlackConnector(Connector):
    """Settings: ``base_url`` (default https://slack.com/api), ``bot_token`` or ``bot_token_file`` (required),
    ``signing_secret`` or ``signing_secret_file`` (needed only to verify button clicks)."""

    name = "slack"
    summary = "Slack: post messages and ask for an approval with Approve and Reject buttons"

    def __init__(
        self,
        config: Mapping[str, Any],
        client: httpx.AsyncClient,
        *,
        policy: HttpPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        token = secret(config, "bot_token", self.name)
        if not token:
            raise InvalidInput("slack: no bot token", hint="set bot_token or bot_token_file (an xoxb- token)")
        self.signing_secret = secret(config, "signing_secret", self.name)
        self.policy = policy or HttpPolicy()
        self.sleep = sleep
        base_url = str(config.get("base_url") or SLACK_API)
        headers = {"Authorization": f"Bearer {token}"}
        self.http = HttpTransport(
            self.name, client, base_url, headers=headers, policy=self.policy, error_message=_error_message, sleep=sleep
        )
        # Posting is not idempotent at Slack, so posts go through a transport that never retries by itself (sharing
        # the breaker and the rate limit); post() retries them, looking for the message before each try.
        self.post_http = HttpTransport(
            self.name,
            client,
            base_url,
            headers=headers,
            policy=dataclasses.replace(self.policy, retries=0),
            error_message=_error_message,
            sleep=sleep,
        )
        self.post_http.breaker = self.http.breaker
        self.post_http.limiter = self.http.limiter

    # -- operations ---------------------------------------------------------------------------------------------

    def operations(self) -> list[OperationSpec]:
        async def post_message(a: PostMessage, call: CallContext) -> Posted:
            message: dict[str, Any] = {"text": a.text}
            if a.blocks is not None:
                message["blocks"] = a.blocks
            if a.thread_ts is not None:
                message["thread_ts"] = a.thread_ts
            return await self.post(a.channel, message, call.idempotency_key, look_first=not call.first_call)

        async def request_approval(a: RequestApproval, call: CallContext) -> Posted:
            message = {
                "text": escape(f"Approval needed: {a.title}"),
                "blocks": approval_blocks(a.task_id, a.title, a.text, a.recommendation, a.confidence),
            }
            return await self.post(a.channel, message, call.idempotency_key, look_first=not call.first_call)

        return [
            OperationSpec(
                "post_message",
                "post a message (text, optional blocks, optional thread)",
                PostMessage,
                Posted,
                post_message,
            ),
            OperationSpec(
                "request_approval",
                "post an approval request with Approve and Reject buttons carrying the task id",
                RequestApproval,
                Posted,
                request_approval,
            ),
        ]

    async def check(self) -> dict[str, Any]:
        try:
            body = await self.call("auth.test")
        except ConnectorError as exc:
            return {"ok": False, "detail": str(exc)}
        return {
            "ok": True,
            "detail": f"authenticated as {body.get('user')} ({body.get('user_id')}) "
            f"in {body.get('team')} ({body.get('team_id')})",
        }

    def interaction(self, headers: Mapping[str, str], body: bytes, now: float | None = None) -> Interaction:
        """A button click sent to the interactivity URL, verified with this connector's signing secret."""
        if not self.signing_secret:
            raise InteractionRefused("no signing secret configured (signing_secret or signing_secret_file)")
        return verify_interaction(headers, body, self.signing_secret, time.time() if now is None else now)

    # -- Web API ------------------------------------------------------------------------------------------------

    async def call(
        self,
        method: str,
        *,
        json_body: Mapping[str, Any] | None = None,
        form: Mapping[str, str] | None = None,
        transport: HttpTransport | None = None,
    ) -> dict[str, Any]:
        """One Web API method; ``{"ok": false}`` answers raise :class:`ConnectorError` with Slack's code.

        Write methods take JSON (declared UTF-8, or Slack warns ``missing_charset``); read methods take a form,
        since Slack reads no JSON body there.
        """
        http = transport or self.http
        path = f"/{method}"
        if json_body is not None:
            headers = {"Content-Type": "application/json; charset=utf-8"}
            response = await http.request("POST", path, json=dict(json_body), headers=headers)
        else:
            response = await http.request("POST", path, data=dict(form or {}))
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("ok"), bool):
            raise ConnectorError(
                f"slack: {method} answered {response.status_code} with a body that is not a Web API answer",
                retryable=True,
                status=response.status_code,
                code="unreadable",
            )
        if body["ok"]:
            warning = body.get("warning")
            if warning:
                log.warning("slack: %s warned %s", method, warning, extra={"connector": self.name})
            return body
        error = str(body.get("error") or "unknown_error")
        retryable = error in RETRYABLE_ERRORS
        detail = error
        if error == "missing_scope" and body.get("needed"):
            detail += f" (needs {body['needed']})"
        raise ConnectorError(
            f"slack: {method} failed: {detail}",
            retryable=retryable,
            status=response.status_code,
            code=error,
            retry_after=retry_after_seconds(response.headers.get("retry-after")) if retryable else None,
        )

    async def find_posted(self, channel: str, key: str, thread_ts: str | None = None) -> str | None:
        """The ``ts`` of a recent message in ``channel`` (or in the thread) carrying ``key`` as its metadata."""
        if thread_ts is None:
            form = {"channel": channel, "limit": str(HISTORY_LIMIT), "include_all_metadata": "true"}
            body = await self.call("conversations.history", form=form)
            return _find_key(body.get("messages"), key)
        # Thread replies are not in conversations.history (only their parents are).
        cursor = ""
        for _ in range(MAX_REPLY_PAGES):
            form = {"channel": channel, "ts": thread_ts, "limit": str(HISTORY_LIMIT), "include_all_metadata": "true"}
            if cursor:
                form["cursor"] = cursor
            try:
                body = await self.call("conversations.replies", form=form)
            except ConnectorError as exc:
                if exc.code != "not_allowed_token_type":
                    raise
                log.warning(
                    "slack: cannot read thread %s in %s with this token; posting without the duplicate check",
                    thread_ts,
                    channel,
                    extra={"connector": self.name},
                )
                return None
            found = _find_key(body.get("messages"), key)
            if found is not None:
                return found
            metadata = body.get("response_metadata")
            cursor = str(metadata.get("next_cursor") or "") if isinstance(metadata, dict) else ""
            if not cursor:
                return None
        return None

    async def post(self, channel: str, message: Mapping[str, Any], key: str, *, look_first: bool = True) -> Posted:
        """``chat.postMessage`` at most once per idempotency key, retrying after looking for the message again.

        Without ``look_first`` (the step's first call: nothing can carry its key yet) the first post goes out
        without looking; a retry after an answer that may have been lost still looks."""
        payload = {
            **message,
            "channel": channel,
            "metadata": {"event_type": METADATA_EVENT, "event_payload": {"idempotency_key": key}},
        }
        thread_ts = message.get("thread_ts")
        attempt = 0
        look = look_first
        while True:
            attempt += 1
            if look:
                existing = await self.find_posted(channel, key, thread_ts if isinstance(thread_ts, str) else None)
                if existing is not None:
                    log.info(
                        "slack: message for %s already posted as %s", key, existing, extra={"connector": self.name}
                    )
                    return Posted(channel=channel, ts=existing)
            try:
                body = await self.call("chat.postMessage", json_body=payload, transport=self.post_http)
            except ConnectorError as exc:
                if not exc.retryable or exc.code == "circuit_open" or attempt > self.policy.retries:
                    raise
                wait = exc.retry_after
                if wait is None:
                    wait = min(self.policy.max_backoff_s, self.policy.backoff_s * 2 ** (attempt - 1))
                    wait *= 0.5 + random.random() / 2
                elif wait > self.policy.max_retry_after_s:
                    raise
                look = exc.code not in _NOT_POSTED
                log.info("slack: retrying chat.postMessage in %.2f s: %s", wait, exc, extra={"connector": self.name})
                await self.sleep(wait)
                continue
            ts = body.get("ts")
            if not isinstance(ts, str):
                raise ConnectorError(
                    "slack: chat.postMessage answered ok without a ts", retryable=True, code="unreadable"
                )
            return Posted(channel=str(body.get("channel") or channel), ts=ts)


# -- interactivity ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Interaction:
    """A verified click on an approval request's Approve or Reject button."""

    task_id: str
    approve: bool
    user_id: str
    user_name: str
    channel: str
    message_ts: str


class InteractionRefused(ValueError):
    """A request to the interactivity URL that is not a verified click on one of our buttons; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def signature(signing_secret: str, timestamp: str, body: bytes) -> str:
    """Slack's request signature: ``v0=`` and the hex HMAC-SHA256 of ``v0:{timestamp}:{body}``."""
    base = b"v0:" + timestamp.encode("ascii") + b":" + body
    return "v0=" + hmac.new(signing_secret.encode("utf-8"), base, hashlib.sha256).hexdigest()


def _text(container: Any, key: str) -> str:
    value = container.get(key) if isinstance(container, dict) else None
    return value if isinstance(value, str) else ""


def verify_interaction(headers: Mapping[str, str], body: bytes, signing_secret: str, now: float) -> Interaction:
    """Check the signature and age of a request Slack sent to the interactivity URL, then read the click.

    ``body`` is the raw request body, as received (the signature covers its bytes); ``now`` is the Unix time.
    Raises :class:`InteractionRefused` for a missing or bad signature, a timestamp more than five minutes away,
    a body that is not a ``block_actions`` payload, or a click on a button that is not ours.
    """
    if not signing_secret:
        raise InteractionRefused("no signing secret to verify the request with")
    lowered = {name.lower(): value for name, value in headers.items()}
    timestamp = lowered.get("x-slack-request-timestamp", "").strip()
    given = lowered.get("x-slack-signature", "").strip()
    if not timestamp or not given:
        raise InteractionRefused("unsigned request: X-Slack-Request-Timestamp or X-Slack-Signature is missing")
    if not (timestamp.isascii() and timestamp.isdigit()):
        raise InteractionRefused("malformed X-Slack-Request-Timestamp")
    skew = now - int(timestamp)
    if abs(skew) > MAX_CLOCK_SKEW_S:
        raise InteractionRefused(
            f"stale request: signed {abs(skew):.0f} s {'ago' if skew > 0 else 'ahead'}; at most "
            f"{MAX_CLOCK_SKEW_S:.0f} s allowed"
        )
    expected = signature(signing_secret, timestamp, body)
    if not hmac.compare_digest(expected.encode("ascii"), given.encode("utf-8", "replace")):
        raise InteractionRefused("bad signature: the body was not signed with this signing secret")

    try:
        fields = urllib.parse.parse_qs(body.decode("utf-8"), strict_parsing=True, max_num_fields=10)
    except (UnicodeDecodeError, ValueError):
        raise InteractionRefused("malformed body: not a UTF-8 form") from None
    payloads = fields.get("payload", [])
    if len(payloads) != 1:
        raise InteractionRefused("malformed body: expected exactly one payload field")
    try:
        payload = json.loads(payloads[0])
    except ValueError:
        raise InteractionRefused("malformed payload: not JSON") from None
    if not isinstance(payload, dict):
        raise InteractionRefused("malformed payload: not a JSON object")
    if payload.get("type") != "block_actions":
        raise InteractionRefused(f"not our action: a {str(payload.get('type'))[:40]!r} interaction, not block_actions")
    actions = payload.get("actions")
    if not isinstance(actions, list) or not actions or not isinstance(actions[0], dict):
        raise InteractionRefused("malformed payload: no action")
    action_id = _text(actions[0], "action_id")
    if action_id not in (APPROVE_ACTION, REJECT_ACTION):
        raise InteractionRefused(f"not our action: {action_id[:80]!r}")
    task_id = _text(actions[0], "value")
    if not task_id:
        raise InteractionRefused("malformed payload: the button carries no task id")
    user = payload.get("user")
    user_id = _text(user, "id")
    if not user_id:
        raise InteractionRefused("malformed payload: no user")
    user_name = _text(user, "username") or _text(user, "name") or user_id
    container = payload.get("container")
    channel = _text(payload.get("channel"), "id") or _text(container, "channel_id")
    message_ts = _text(container, "message_ts") or _text(payload.get("message"), "ts")
    if not channel or not message_ts:
        raise InteractionRefused("malformed payload: no channel or message timestamp")
    return Interaction(
        task_id=task_id,
        approve=action_id == APPROVE_ACTION,
        user_id=user_id,
        user_name=user_name,
        channel=channel,
        message_ts=message_ts,
    )
