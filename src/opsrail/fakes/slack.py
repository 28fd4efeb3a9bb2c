"""A fake Slack Web API that keeps messages in memory, for tests and local demos.

Owns ``create_app``: ``POST|GET /api/<method>`` for ``auth.test``, ``chat.postMessage``, ``conversations.history``
and ``conversations.replies`` with the answer shapes of the published Web API: HTTP 200 with ``{"ok": true, …}`` or
``{"ok": false, "error": "<code>"}`` (``not_authed``, ``invalid_auth``, ``channel_not_found``, ``not_in_channel``,
``no_text``, ``invalid_blocks``, ``invalid_metadata_format``, ``invalid_cursor``, ``thread_not_found``), bearer
tokens, arguments as a query string, a form or (write methods only, as at Slack) JSON, message timestamps such as
``1700000000.000100``, newest-first history with ``limit`` and ``cursor`` pagination (``response_metadata.
next_cursor``), and message metadata returned only with ``include_all_metadata``.

Knobs to fail on purpose: the first ``rate_limit_first`` calls get HTTP 429 ``{"ok": false, "error": "ratelimited"}``
with ``Retry-After``, the next ``fail_first`` get HTTP 500, the first ``post_then_fail_first`` posts are stored and
then answered 500 (Slack posted, the answer was lost), and every answer can be delayed by ``delay_s``.

``interaction_request`` builds a correctly signed ``block_actions`` callback, as Slack sends to an app's
interactivity URL when someone clicks Approve or Reject.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import threading
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from opsrail.connectors.slack import APPROVE_ACTION, REJECT_ACTION

TEAM_ID = "T0OPSRAIL"
BOT_USER_ID = "U0OPSBOT"
BOT_ID = "B0OPSBOT"
APP_ID = "A0OPSRAIL"
# Known conversations; the bot is a member of all but C0PRIV.
CHANNELS = {"C0OPS": "ops", "C0FIN": "finance", "C0PRIV": "leadership"}
NOT_A_MEMBER = frozenset({"C0PRIV"})
FIRST_TS = 1_700_000_000
READ_METHODS = frozenset({"auth.test", "conversations.history", "conversations.replies"})


def _answer(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers)


def _fail(error: str, status: int = 200, **extra: Any) -> JSONResponse:
    return _answer({"ok": False, "error": error, **extra}, status)


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() in {"1", "true"}


def _json_arg(value: Any) -> Any:
    """Form-encoded calls carry ``blocks`` and ``metadata`` as JSON strings; JSON calls carry them as values."""
    if isinstance(value, str):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
    return value


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"next_ts:{offset}".encode()).decode()


def _offset(cursor: str) -> int | None:
    try:
        kind, _, number = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
        return int(number) if kind == "next_ts" and int(number) >= 0 else None
    except (ValueError, UnicodeDecodeError):
        return None


def _page(messages: list[dict[str, Any]], args: Mapping[str, Any]) -> dict[str, Any] | JSONResponse:
    try:
        limit = int(args.get("limit") or 100)
    except ValueError:
        return _fail("invalid_limit")
    limit = max(1, min(limit, 999))
    offset = 0
    if args.get("cursor"):
        found = _offset(str(args["cursor"]))
        if found is None:
            return _fail("invalid_cursor")
        offset = found
    metadata = _truthy(args.get("include_all_metadata"))
    shown = []
    for message in messages[offset : offset + limit]:
        copy = dict(message)
        if not metadata:
            copy.pop("metadata", None)
        shown.append(copy)
    more = offset + limit < len(messages)
    return {
        "ok": True,
        "messages": shown,
        "has_more": more,
        "response_metadata": {"next_cursor": _cursor(offset + limit) if more else ""},
    }


def create_app(
    *,
    bot_token: str = "xoxb-test",  # noqa: S107 - the fake's own test token
    rate_limit_first: int = 0,
    fail_first: int = 0,
    delay_s: float = 0.0,
    retry_after_s: float = 1.0,
    post_then_fail_first: int = 0,
) -> FastAPI:
    """The fake. ``app.state.messages`` maps channel IDs to their messages (oldest first); ``app.state.calls`` lists
    ``(method, arguments)`` of every authenticated call."""
    app = FastAPI(title="Fake Slack Web API", docs_url=None, redoc_url=None, openapi_url=None)
    lock = threading.Lock()
    counters = {"calls": 0, "posts": 0, "ts": 0}
    app.state.messages = {channel: [] for channel in CHANNELS}
    app.state.calls = []

    async def arguments(request: Request, method: str) -> dict[str, Any]:
        args: dict[str, Any] = dict(request.query_params)
        raw = await request.body()
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if raw and content_type == "application/x-www-form-urlencoded":
            args.update(urllib.parse.parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
        elif raw and content_type == "application/json" and method not in READ_METHODS:
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError:
                body = None
            if isinstance(body, dict):
                args.update(body)
        return args

    def token_of(request: Request, args: Mapping[str, Any]) -> str | None:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            return header[7:].strip()
        token = args.get("token")
        return str(token) if token else None

    def resolve(channel: Any) -> str | None:
        name = str(channel or "").lstrip("#")
        if name in CHANNELS:
            return name
        return next((cid for cid, cname in CHANNELS.items() if cname == name), None)

    def auth_test() -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://opsrail-test.slack.com/",
            "team": "Opsrail Test",
            "user": "opsrail",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def post_message(args: Mapping[str, Any], lost: bool) -> dict[str, Any] | JSONResponse:
        channel = resolve(args.get("channel"))
        if channel is None:
            return _fail("channel_not_found")
        if channel in NOT_A_MEMBER:
            return _fail("not_in_channel")
        text = args.get("text")
        blocks = _json_arg(args.get("blocks")) if args.get("blocks") is not None else None
        if blocks is not None and (
            not isinstance(blocks, list)
            or not all(isinstance(b, dict) and isinstance(b.get("type"), str) for b in blocks)
        ):
            return _fail("invalid_blocks")
        if not (isinstance(text, str) and text.strip()) and not blocks:
            return _fail("no_text")
        if isinstance(text, str) and len(text) > 40_000:
            return _fail("msg_too_long")
        metadata = _json_arg(args.get("metadata")) if args.get("metadata") is not None else None
        if metadata is not None and (
            not isinstance(metadata, dict)
            or not isinstance(metadata.get("event_type"), str)
            or not isinstance(metadata.get("event_payload"), dict)
        ):
            return _fail("invalid_metadata_format")
        thread_ts = args.get("thread_ts")
        with lock:
            counters["ts"] += 100
            ts = f"{FIRST_TS + counters['ts'] // 1_000_000}.{counters['ts'] % 1_000_000:06d}"
            message: dict[str, Any] = {
                "type": "message",
                "subtype": "bot_message",
                "text": text if isinstance(text, str) else "",
                "user": BOT_USER_ID,
                "bot_id": BOT_ID,
                "app_id": APP_ID,
                "team": TEAM_ID,
                "ts": ts,
            }
            if blocks:
                message["blocks"] = blocks
            if thread_ts:
                message["thread_ts"] = str(thread_ts)
            if metadata is not None:
                message["metadata"] = metadata
            app.state.messages[channel].append(message)
        if lost:
            return _fail("internal_error", 500)
        return {"ok": True, "channel": channel, "ts": ts, "message": message}

    def member_channel(args: Mapping[str, Any]) -> str | JSONResponse:
        channel = str(args.get("channel") or "")
        if channel not in CHANNELS:  # reading takes conversation IDs only
            return _fail("channel_not_found")
        if channel in NOT_A_MEMBER:
            return _fail("not_in_channel")
        return channel

    def history(args: Mapping[str, Any]) -> dict[str, Any] | JSONResponse:
        channel = member_channel(args)
        if isinstance(channel, JSONResponse):
            return channel
        with lock:
            parents = [m for m in app.state.messages[channel] if m.get("thread_ts", m["ts"]) == m["ts"]]
        return _page(list(reversed(parents)), args)

    def replies(args: Mapping[str, Any]) -> dict[str, Any] | JSONResponse:
        channel = member_channel(args)
        if isinstance(channel, JSONResponse):
            return channel
        parent_ts = str(args.get("ts") or "")
        with lock:
            messages = app.state.messages[channel]
            if not any(m["ts"] == parent_ts for m in messages):
                return _fail("thread_not_found")
            thread = [m for m in messages if m["ts"] == parent_ts or m.get("thread_ts") == parent_ts]
        return _page(thread, args)

    @app.api_route("/api/{method}", methods=["GET", "POST"])
    async def web_api(method: str, request: Request) -> Any:
        args = await arguments(request, method)
        token = token_of(request, args)
        if not token:
            return _fail("not_authed")
        if not hmac.compare_digest(token.encode(), bot_token.encode()):
            return _fail("invalid_auth")
        with lock:
            counters["calls"] += 1
            number = counters["calls"]
            app.state.calls.append((method, {k: v for k, v in args.items() if k != "token"}))
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        if number <= rate_limit_first:
            return _answer({"ok": False, "error": "ratelimited"}, 429, {"Retry-After": f"{retry_after_s:g}"})
        if number <= rate_limit_first + fail_first:
            return _fail("internal_error", 500)
        answer: dict[str, Any] | JSONResponse
        if method == "auth.test":
            answer = auth_test()
        elif method == "chat.postMessage":
            with lock:
                counters["posts"] += 1
                lost = counters["posts"] <= post_then_fail_first
            answer = post_message(args, lost)
        elif method == "conversations.history":
            answer = history(args)
        elif method == "conversations.replies":
            answer = replies(args)
        else:
            return _fail("unknown_method", 404, req_method=method)
        if isinstance(answer, dict) and request.headers.get("content-type", "").strip().lower() == "application/json":
            answer = {**answer, "warning": "missing_charset", "response_metadata": {"warnings": ["missing_charset"]}}
        return answer

    return app


def interaction_request(
    signing_secret: str,
    task_id: str,
    approve: bool,
    user: str = "U0APPROVER",
    ts: float | None = None,
    *,
    user_name: str = "approver",
    channel: str = "C0OPS",
    message_ts: str = "1700000000.000100",
    action_id: str | None = None,
) -> tuple[dict[str, str], bytes]:
    """A signed ``block_actions`` callback for a click on Approve (``approve``) or Reject: ``(headers, body)``.

    ``ts`` is the request time (``X-Slack-Request-Timestamp``, default now); ``action_id`` overrides the button's.
    """
    stamp = str(int(time.time() if ts is None else ts))
    action = action_id or (APPROVE_ACTION if approve else REJECT_ACTION)
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": user_name, "name": user_name, "team_id": TEAM_ID},
        "api_app_id": APP_ID,
        "token": "verification-token-unused",
        "container": {"type": "message", "message_ts": message_ts, "channel_id": channel, "is_ephemeral": False},
        "trigger_id": f"{stamp}.1.{hashlib.sha256(task_id.encode()).hexdigest()[:16]}",
        "team": {"id": TEAM_ID, "domain": "opsrail-test"},
        "channel": {"id": channel, "name": CHANNELS.get(channel, channel)},
        "message": {"type": "message", "user": BOT_USER_ID, "bot_id": BOT_ID, "ts": message_ts},
        "response_url": f"https://hooks.slack.com/actions/{TEAM_ID}/1/fake",
        "actions": [
            {
                "type": "button",
                "block_id": "opsrail_approval",
                "action_id": action,
                "text": {"type": "plain_text", "text": "Approve" if approve else "Reject"},
                "value": task_id,
                "style": "primary" if approve else "danger",
                "action_ts": f"{stamp}.000001",
            }
        ],
    }
    body = urllib.parse.urlencode({"payload": orjson.dumps(payload).decode()}).encode()
    digest = hmac.new(signing_secret.encode(), b"v0:" + stamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": f"v0={digest}",
    }
    return headers, body
